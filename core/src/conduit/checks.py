"""Quality checks: the :class:`Check` base class and the built-in checks.

A check looks at a whole ``RecordBatch`` at once (vectorised with ``pyarrow.compute``) and returns a
boolean mask, ``True`` for rows that pass. The engine counts failures and acts on them by the check's
``action``: ``fail`` stops the entity with an error naming the first failing row and column; ``warn``
logs a summary with the count and a few example rows. Built-in checks are registered through the
``conduit_register_checks`` hook, exactly as a third-party check is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Literal

import pyarrow as pa
import pyarrow.compute as pc

from conduit.connectors import ConnectorOptions
from conduit.hookspecs import hookimpl

CheckAction = Literal["fail", "warn"]


class CheckOptions(ConnectorOptions):
    """Options every check accepts. Subclass it to add a check's own options."""

    action: CheckAction = "fail"


class Check(ABC):
    """A row-level quality check over record batches."""

    options_model: ClassVar[type[CheckOptions]] = CheckOptions

    def __init__(self, options: CheckOptions) -> None:
        self.options = options

    def columns(self) -> list[str]:
        """The columns the check reads; the engine verifies they exist before loading."""
        return []

    @abstractmethod
    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """One boolean per row, ``True`` where the row passes (nulls in the result count as passing)."""

    def describe(self) -> str:
        """A short human description used in messages, e.g. ``not_null(id, email)``."""
        return f"{type(self).__name__}({', '.join(self.columns())})"


class NotNullOptions(CheckOptions):
    columns: list[str]


class NotNull(Check):
    """Every listed column has a value in every row."""

    options_model = NotNullOptions

    def columns(self) -> list[str]:
        assert isinstance(self.options, NotNullOptions)
        return list(self.options.columns)

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        mask: pa.BooleanArray | None = None
        for name in self.columns():
            valid = pc.is_valid(batch.column(name))
            mask = valid if mask is None else pc.and_(mask, valid)
        if mask is None:
            return pa.array([True] * batch.num_rows, pa.bool_())
        return mask

    def describe(self) -> str:
        return f"not_null({', '.join(self.columns())})"


@hookimpl
def conduit_register_checks(register: Callable[[str, type[Check]], None]) -> None:
    register("not_null", NotNull)
