"""Ask HAProxy whether a candidate config is valid, before it can replace the live one.

``haproxy -c -f FILE`` is the oracle; its exit status is what counts.  On
failure the error carries HAProxy's ``[ALERT]`` lines, with the temporary file's
name replaced by the output's name so the message points where a user looks.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError, ValidationError

DEFAULT_CHECK = "haproxy -c -f {path}"


class Checker(Protocol):
    """What validates a candidate config: :class:`Validator`, or a wrapper that times it."""

    def check(self, candidate: Path, shown_as: Path | None = None) -> None: ...


@dataclass(frozen=True)
class Validator:
    """Runs a check command on a file; ``{path}`` in the command is the candidate's path."""

    command: str = DEFAULT_CHECK
    timeout: float = 30.0

    def argv(self, path: Path) -> list[str]:
        try:
            words = shlex.split(self.command)
        except ValueError as exc:
            raise ConfigError(f"invalid --check-cmd {self.command!r}: {exc}") from exc
        if not any("{path}" in w for w in words):
            words.append(str(path))
        return [w.replace("{path}", str(path)) for w in words]

    def ensure_available(self) -> None:
        """At start: the check command must exist (ConfigError, exit 2, otherwise)."""
        program = self.argv(Path("candidate"))[0]
        if shutil.which(program) is None:
            raise ConfigError(f"--check-cmd: command not found: {program}")

    def check(self, candidate: Path, shown_as: Path | None = None) -> None:
        """Raise ValidationError unless the command accepts ``candidate``."""
        argv = self.argv(candidate)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except FileNotFoundError as exc:  # it was there at start
            raise ValidationError(f"check command not found: {argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise ValidationError(f"{argv[0]} did not finish checking the config in {self.timeout:.0f}s") from exc
        if proc.returncode == 0:
            return
        output = (proc.stdout + proc.stderr).replace(str(candidate), str(shown_as or candidate))
        alerts = [ln.strip() for ln in output.splitlines() if "[ALERT]" in ln] or [
            ln.strip() for ln in output.splitlines() if ln.strip()
        ]
        first = next((a for a in alerts if "parsing [" in a), alerts[0] if alerts else "no output")
        raise ValidationError(f"HAProxy rejected the rendered config: {_strip_prefix(first)}", "\n".join(alerts))


def _strip_prefix(line: str) -> str:
    """``[ALERT]    (123) : config : parsing [x:3] : ...`` -> ``parsing [x:3] : ...``."""
    return re.sub(r"^\[ALERT\]\s*\(\d+\)\s*:\s*(config\s*:\s*)?", "", line)
