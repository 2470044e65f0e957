"""The output file and its last good copy: atomic writes, validated installs, restores."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ConfigError
from .validate import Validator


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, whole."""
    tmp = _write_temp(path, text)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _write_temp(path: Path, text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(name, mode)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LiveConfig:
    """The output file and its last good copy."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_good = path.with_name(path.name + ".last-good")
        if not path.parent.is_dir():
            raise ConfigError(f"output directory {path.parent} does not exist")
        # A watcher killed mid-write leaves its temporary file behind, never a partial config.
        for stale in path.parent.glob(f".{path.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def read(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None

    def install(self, text: str, validator: Validator | None) -> None:
        """Validate ``text`` as a temporary file and rename it over the live file."""
        candidate = _write_temp(self.path, text)
        try:
            if validator is not None:
                validator.check(candidate, shown_as=self.path)
            os.replace(candidate, self.path)
        except BaseException:
            candidate.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)

    def adopt_running(self) -> None:
        """At start, the file HAProxy runs with is the last good one unless we kept a newer copy."""
        if not self.last_good.exists():
            text = self.read()
            if text is not None:
                self.keep_as_last_good(text)

    def keep_as_last_good(self, text: str) -> None:
        write_atomic(self.last_good, text)

    def restore_last_good(self) -> bool:
        try:
            text = self.last_good.read_text()
        except FileNotFoundError:
            return False
        write_atomic(self.path, text)
        return True
