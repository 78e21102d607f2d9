"""Keeping secrets out of every output.

Secrets are known three ways: connector options typed :class:`pydantic.SecretStr` (exported as
``conduit.Secret``), config values under secret-looking keys (``password``, ``token``, ``api_key``,
``secret``, ...), and environment variables with such names. Every line the CLI prints passes through
:data:`REDACTOR`, which replaces

* the password of any ``scheme://user:password@host`` URL, whatever its length, and
* every registered secret value of at least :data:`MIN_LENGTH` characters, where it stands as a whole
  token (not inside a longer run of letters and digits),

with ``***``. Shorter and empty secrets are never searched for in free text, so a one-letter password
cannot mask every ``a`` in a message; structured output (``config explain``) masks secret fields by
type regardless of length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
MIN_LENGTH = 4
SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?$|secret|token|api[_-]?key|private[_-]?key|access[_-]?key|credential|^key$)", re.I
)
URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)([^@\s/]+)(@)", re.I)


class Redactor:
    """Registered secret values, and :meth:`redact` to mask them (and URL passwords) in text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: object) -> None:
        text = "" if value is None else str(value)
        if len(text) >= MIN_LENGTH and text not in self._values:
            self._values.add(text)
            self._pattern = None

    def redact(self, text: str) -> str:
        text = URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
        if not self._values:
            return text
        if self._pattern is None:
            alternatives = "|".join(re.escape(v) for v in sorted(self._values, key=len, reverse=True))
            self._pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
        return self._pattern.sub(MASK, text)

    def clear(self) -> None:
        self._values.clear()
        self._pattern = None


REDACTOR = Redactor()


def is_secret_key(key: object) -> bool:
    return bool(SECRET_KEY.search(str(key)))


def register_secrets_in(data: Any) -> None:
    """Register the values under secret-looking keys, and the passwords inside URLs, found in ``data``."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            if is_secret_key(key) and isinstance(value, str | int):
                REDACTOR.add(value)
            register_secrets_in(value)
    elif isinstance(data, list):
        for item in data:
            register_secrets_in(item)
    elif isinstance(data, str) and "://" in data:
        for match in URL_PASSWORD.finditer(data):
            REDACTOR.add(match.group(2))


def register_environment(environ: Mapping[str, str]) -> None:
    """Environment variables with secret-looking names (``PG_PASSWORD``, ``API_TOKEN``) are secrets."""
    for name, value in environ.items():
        if is_secret_key(name.lower()):
            REDACTOR.add(value)
        elif "://" in value:
            register_secrets_in(value)


def mask_json(data: Any) -> Any:
    """A copy of ``data`` with values under secret-looking keys replaced by ``***``."""
    if isinstance(data, Mapping):
        return {
            key: (MASK if is_secret_key(key) and value is not None else mask_json(value))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [mask_json(item) for item in data]
    if isinstance(data, str):
        return REDACTOR.redact(data)
    return data
