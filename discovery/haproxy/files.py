"""The output file and its last good copy: atomic writes, validated installs, restores."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ConfigError, OutputError, ValidationError
from .validate import Checker


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, whole."""
    tmp = _write_temp(path, text)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def _write_temp(path: Path, text: str, sync: bool = True) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            if sync:  # a file only read by the check and then deleted needs no trip to the disk
                os.fsync(handle.fileno())
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(name, mode)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _fsync(path: Path) -> None:
    """fsync a file or a directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LiveConfig:
    """The output file and its last good copy.

    Building one touches nothing: :meth:`prepare` (the watcher's start, never a
    dry run or ``plan``) removes a crashed run's temporary files and records the
    running config as the last good one.  Every write failure is an OutputError.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_good = path.with_name(path.name + ".last-good")
        self._unsynced = False
        if not path.parent.is_dir():
            raise ConfigError(f"output directory {path.parent} does not exist")

    def prepare(self) -> None:
        """Before the first write: remove stale temporary files, adopt the running file as last good."""
        # A watcher killed mid-write leaves its temporary file behind, never a partial config.
        with _writing(self.path):
            for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
                stale.unlink(missing_ok=True)
            if not self.last_good.exists():
                text = self.read()
                if text is not None:
                    self.keep_as_last_good(text)

    def read(self) -> str | None:
        try:
            return self.path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OutputError(f"cannot read {self.path}: {exc.strerror}") from exc

    def install(
        self,
        text: str,
        validator: Checker | None,
        delta: str | None = None,
        mark: Callable[[str], None] = lambda _stage: None,
        durable: bool = True,
    ) -> None:
        """Validate ``text`` as a temporary file and rename it over the live file.

        ``delta``, when given, is what ``text`` adds to the config HAProxy already accepted (its
        skeleton and only the new or changed lines): that is checked instead, at a cost that does
        not grow with the catalog.  If HAProxy rejects the delta (a template may refer to servers
        it leaves out), the whole text is checked, so a rejection always names the real file.

        With ``durable=False`` (the live path) the rename is as atomic for every reader, but the
        trips to the disk (fsync of the file and its directory, milliseconds each) wait for
        :meth:`sync`, which the caller runs as soon as nothing is pending; only a power loss in
        between can find the previous file on disk.
        """
        with _writing(self.path):
            candidate = _write_temp(self.path, text, sync=durable)
            mark("write")
            try:
                if validator is not None and not self._delta_accepted(delta, validator):
                    validator.check(candidate, shown_as=self.path)
                mark("validate")
                os.replace(candidate, self.path)
            except BaseException:
                candidate.unlink(missing_ok=True)
                raise
            if durable:
                _fsync(self.path.parent)
            self._unsynced = not durable
            mark("install")

    def sync(self) -> None:
        """Make the last install that was not ``durable`` reach the disk (file, then directory)."""
        if not self._unsynced:
            return
        with _writing(self.path):
            _fsync(self.path)
            _fsync(self.path.parent)
        self._unsynced = False

    def _delta_accepted(self, delta: str | None, validator: Checker) -> bool:
        if delta is None:
            return False
        checked = _write_temp(self.path, delta, sync=False)
        try:
            validator.check(checked, shown_as=self.path)
            return True
        except ValidationError:
            return False
        finally:
            checked.unlink(missing_ok=True)

    def keep_as_last_good(self, text: str) -> None:
        with _writing(self.last_good):
            write_atomic(self.last_good, text)

    def read_last_good(self) -> str | None:
        try:
            return self.last_good.read_text()
        except FileNotFoundError:
            return None

    def restore_last_good(self) -> str | None:
        """Put the last good copy back as the live file; return its text (None: there is none)."""
        text = self.read_last_good()
        if text is not None:
            with _writing(self.path):
                write_atomic(self.path, text)
        return text


@contextlib.contextmanager
def _writing(path: Path) -> Iterator[None]:
    """OSError (disk full, permissions, a directory gone) becomes an OutputError naming the file."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
