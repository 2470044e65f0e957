"""``--listen-auth-file FILE``: the credential that protects the dashboard and ``/metrics``.

The file holds one line: a bearer token, or ``user:password``.  It is read once, at start
(like the file it replaces on the command line, it stays out of ``ps`` and shell history).
A request is let in with either:

- ``Authorization: Bearer <the file's line>`` (Prometheus' ``authorization`` setting with
  ``credentials_file``, curl's ``-H``), or
- ``Authorization: Basic ...`` (a browser's login prompt): ``user:password`` as in the file,
  or, for a token, any user name with the token as the password.

Comparisons take the same time whatever the input (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

#: What a refused request is told, so that browsers show their login prompt.
CHALLENGE = 'Basic realm="disco", charset="UTF-8"'


@dataclass(frozen=True, repr=False)
class Credential:
    secret: str

    @classmethod
    def load(cls, path: Path) -> Credential:
        """Read the file; ConfigError (exit 2) when it cannot be read, is empty or has more than one line."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"--listen-auth-file {path}: cannot read it: {reason}") from exc
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if len(lines) != 1:
            raise ConfigError(
                f"--listen-auth-file {path}: expected one line (a token, or user:password), found {len(lines)}"
            )
        secret = lines[0]
        if any(ch.isspace() or ord(ch) < 0x21 for ch in secret):
            raise ConfigError(f"--listen-auth-file {path}: the token must not contain spaces or control characters")
        return cls(secret)

    def __repr__(self) -> str:
        return "Credential(***)"

    def allows(self, header: str | None) -> bool:
        """Whether an ``Authorization`` header carries this credential."""
        scheme, _, value = (header or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            return _same(value, self.secret)
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        want_user, colon, want_password = self.secret.partition(":")
        if not colon:  # a token: any user name, the token as the password
            return _same(password, self.secret)
        return _same(user, want_user) & _same(password, want_password)


def _same(given: str, wanted: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), wanted.encode("utf-8"))
