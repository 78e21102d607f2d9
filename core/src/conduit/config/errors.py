"""Turning pydantic validation errors into ``file:line:column: key.path: message`` lines."""

from __future__ import annotations

import difflib
import typing
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ValidationError

from conduit.config.documents import Document, KeyPath, format_keypath

Loc = tuple[str | int, ...]
# Given a pydantic error location, where it is in the files ("file:line:col") and its key path text.
Locator = Callable[[Loc], tuple[str, str]]

SECRET_HINTS = ("password", "passwd", "secret", "token", "key", "credential", "dsn")


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _keys_at(model: type[BaseModel], loc: Iterable[str | int]) -> list[str]:
    """The field names of the model that sits at ``loc`` inside ``model`` (best effort)."""
    current = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # a dict key or a list index: the same model goes on
        inner = _models_in(field.annotation)
        if not inner:
            return []
        current = inner[0]
    return list(current.model_fields)


def _describe(error: Any, known: list[str]) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        allowed = f"; allowed keys: {', '.join(known)}" if known and not close else ""
        return f"unknown key {key!r}{hint}{allowed}"
    if kind == "missing":
        return f"missing required key {loc[-1]!r}" if loc else "missing required value"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    value = error.get("input")
    secret_like = any(hint in str(part).lower() for part in loc for hint in SECRET_HINTS)
    if isinstance(value, str | int | float | bool) and len(repr(value)) < 80 and not secret_like:
        message += f" (got {value!r})"
    return message


def problems_from(exc: ValidationError, model: type[BaseModel], locate: Locator) -> list[str]:
    """One line per error: where (file:line:column), which key path, and what is wrong."""
    lines = []
    for error in exc.errors():
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        known = _keys_at(model, loc[:-1]) if kind in ("extra_forbidden", "missing") else []
        where, _ = locate(loc[:-1] if kind == "missing" else loc)
        _, keypath = locate(loc)
        lines.append(f"{where}: {keypath}: {_describe(error, known)}")
    return lines


def validation_problems(
    exc: ValidationError,
    document: Document,
    model: type[BaseModel],
    to_keypath: Callable[[Loc], KeyPath],
) -> list[str]:
    """:func:`problems_from` for data that sits in one document."""

    def locate(loc: Loc) -> tuple[str, str]:
        keypath = to_keypath(loc)
        return str(document.mark(keypath)), format_keypath(keypath)

    return problems_from(exc, model, locate)
