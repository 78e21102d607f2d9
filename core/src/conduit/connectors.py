"""The connector contract: what a source and a destination must do, and what they declare they can do.

A connector package implements :class:`Source` and/or :class:`Destination` and registers them by type
name through the hooks in :mod:`conduit.hookspecs`. The engine builds one instance per entity, with the
entity's fully merged options already validated against the connector's ``options_model``.

Data moves as ``pyarrow.RecordBatch`` streams. A source yields :class:`SourceBatch` objects: the batch
plus the position the source has reached after it (used for messages now and for checkpoints later).
A destination opens a :class:`LoadSession` per entity and run: ``write`` every batch, then ``commit``
(data becomes visible, together with the state when the destination can hold it) or ``abort``
(nothing becomes visible).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import pyarrow as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretStr, ValidationInfo

from conduit.errors import ConnectorError

if TYPE_CHECKING:
    from conduit.schema import ColumnChange

SchemaChangeKind = Literal["add_column", "widen_type"]

WriteMode = Literal["append", "replace", "merge"]
WRITE_MODES: tuple[WriteMode, ...] = ("append", "replace", "merge")
ErrorPolicy = Literal["fail", "dlq"]
"""What happens to a row that cannot be read or converted without loss: ``fail`` the entity with a
located error, or divert the row to the dead-letter queue (``dlq``) and go on."""


def _resolve_local_path(value: str, info: ValidationInfo) -> str:
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    base = (info.context or {}).get("base_dir")
    return str(Path(base) / path) if base is not None else str(path.absolute())


LocalPath = Annotated[str, AfterValidator(_resolve_local_path)]
"""A local file path, directory or glob in connector options. A relative value is resolved against the
project root (the directory holding ``profiles/`` or ``flows/``; for a lone flow file, its directory),
passed by the engine as ``context={"base_dir": ...}`` on validation, so
``conduit run examples/quickstart/ingest.yml`` works from any working directory."""


Secret = SecretStr
"""The type of a secret option (a password, token, key, or a DSN with a password): never printed,
masked as ``***`` in every output; read it with ``.get_secret_value()``."""


class ConnectorOptions(BaseModel):
    """Base of every connector's options model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


@dataclass(frozen=True)
class SourceCapabilities:
    """What a source can do, as data read by the engine and the conformance kit.

    ``typed``: the source carries its own column types (Parquet). An untyped source (CSV) infers
    them or takes declared ``columns`` types; the kit then declares the golden types for it.
    ``declared_columns``: the source accepts a ``columns: {name: type}`` option.
    ``cursor_pushdown``: the source applies :attr:`ReadRequest.cursor` itself and yields rows in
    ascending cursor order (a database ``WHERE ... ORDER BY``); the engine then checkpoints by cursor.
    ``file_positions``: every batch comes from one file and its position is
    ``{"file": path, "row": rows read from that file so far}`` (plus ``"version"`` when the source
    knows one better than the local size and mtime, e.g. an S3 ETag); the source skips the files in
    :attr:`ReadRequest.skip_files` whose version still matches. The engine resumes such a source at
    a file and row. A source with neither is loaded in one commit (a crash leaves nothing to resume).
    """

    typed: bool = True
    declared_columns: bool = False
    cursor_pushdown: bool = False
    file_positions: bool = False
    rejects_rows: bool = False
    """With :attr:`ReadRequest.on_error` ``"dlq"`` the source does not fail on a malformed row or a
    value that does not convert to its column's type: it leaves the row out of the batch and reports
    it in :attr:`SourceBatch.rejected` (see :func:`conduit.coerce.coerce_batch`)."""


@dataclass(frozen=True)
class DestinationCapabilities:
    """What a destination can do, as data read by the engine and the conformance kit.

    ``write_modes``: the modes an entity may ask for. ``atomic``: nothing written by a session is
    visible before ``commit`` and nothing at all after ``abort``. ``preserves_types``: what is read
    back has the Arrow types that were written (Parquet); ``False`` for text formats, which need the
    types declared again to read back. ``default_mode``: the mode of an entity that sets none.
    """

    write_modes: frozenset[WriteMode] = frozenset({"replace"})
    default_mode: WriteMode = "replace"
    atomic: bool = True
    preserves_types: bool = True
    stores_state: bool = False
    """``commit(state)`` stores the entity's state atomically with the data, and ``read_state``,
    ``write_state`` and ``lock`` work: incremental loads and checkpoints are then exactly-once. Without
    it the engine keeps state in the local state directory, written right after each commit."""
    schema_changes: frozenset[SchemaChangeKind] = frozenset()
    """What schema evolution the target can take: ``add_column`` (a new nullable column) and
    ``widen_type`` (a column to a wider type, see :mod:`conduit.schema`). A database runs DDL from
    :meth:`Destination.plan_schema_changes`; a file destination writes new parts with the new schema."""


@dataclass(frozen=True)
class Rejected:
    """One input row a source could not turn into a row of the schema.

    ``row``: the 1-based number of the data row in its file (counting rejected rows too), ``line``:
    the physical line where the record starts, when known. ``rule``: what rejected it (``parse`` for a
    malformed record, ``coerce`` for a value that does not convert, ``utf8`` for undecodable text);
    ``reason``: a stable code (``field_count``, ``not_a_number``, ``overflow``, ``precision_loss``,
    ``bad_date``, ``bad_timestamp``, ``missing_offset``, ``bad_boolean``, ``invalid_utf8``...);
    ``message``: one readable sentence; ``column``: the column at fault, when one is.
    ``values``: the row's original values by column name (text as it was in the file) or ``None``
    when the record could not be split into columns; ``raw``: the raw record text, when known.
    """

    row: int | None
    line: int | None
    rule: str
    reason: str
    message: str
    column: str | None = None
    values: Mapping[str, Any] | None = None
    raw: str | None = None


@dataclass(frozen=True)
class SourceBatch:
    """One batch from a source and the position reached after it.

    ``position`` is a small JSON-serialisable mapping, e.g. ``{"file": "a.csv", "row": 65536}``.
    With ``file_positions``, ``row`` counts every data row consumed from the file so far, the
    ``rejected`` ones included, so ``position["row"]`` moves on by ``data.num_rows + len(rejected)``.
    ``rejected``: the rows of this stretch of input left out of ``data`` (only with
    ``ReadRequest.on_error == "dlq"``).
    """

    data: pa.RecordBatch
    position: Mapping[str, Any] = field(default_factory=dict)
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True)
class ReadRequest:
    """What the engine asks of a source for one entity.

    ``schema`` is the schema :meth:`Source.discover` returned; every batch must have exactly it.
    ``batch_size`` is the target number of rows per batch (memory is bounded by it).
    """

    entity: str
    schema: pa.Schema
    batch_size: int
    cursor: CursorFilter | None = None
    skip_files: Mapping[str, str] = field(default_factory=dict)
    """Files already loaded, ``path -> version`` (see :func:`conduit.files.file_version`): a source
    with ``file_positions`` does not read a file whose version still matches."""
    on_error: ErrorPolicy = "fail"
    """The entity's ``on_error``. A source with ``rejects_rows`` honours ``"dlq"`` by reporting bad
    rows in :attr:`SourceBatch.rejected` instead of raising; any other source raises as usual."""


@dataclass(frozen=True)
class CursorFilter:
    """The incremental filter the engine asks a ``cursor_pushdown`` source to apply.

    Rows whose ``column`` is at or past ``value`` (strictly past when ``inclusive`` is false), and
    rows whose cursor is NULL (the engine applies the entity's NULL policy to them), in ascending
    cursor order. ``value`` is ``None`` on a first load: every row. The engine filters again in
    Arrow, so a source that cannot push a filter down stays correct, only slower.
    """

    column: str
    value: Any
    inclusive: bool = True


@dataclass(frozen=True)
class StateKey:
    """Whose state: one entity of one flow. Together with the destination's target
    (:meth:`Destination.target_id`) it is the identity of an entity's state, lock, schema record and
    dead-letter recovery: two flows with an entity of the same name never share any of them, and a
    run of the same flow and entity from another machine finds the same state at the same target."""

    flow: str
    entity: str

    def __str__(self) -> str:
        return f"entity {self.entity!r} of flow {self.flow!r}" if self.flow else f"entity {self.entity!r}"


@dataclass(frozen=True)
class WriteRequest:
    """What the engine asks of a destination for one entity: where, with which schema and mode."""

    entity: str
    schema: pa.Schema
    mode: WriteMode
    run_id: str
    commit_seq: int = 0
    """Which of the run's commits this session is (0, 1, ...): part files named with it are unique."""
    flow: str = ""
    """The flow the entity belongs to; ``key`` (flow and entity) names the state ``commit`` stores."""

    @property
    def key(self) -> StateKey:
        return StateKey(self.flow, self.entity)


class Source(ABC):
    """A stream of record batches for one entity.

    Subclasses set ``options_model`` (a :class:`ConnectorOptions` subclass) and may override
    ``capabilities``. ``check`` is a cheap preflight; ``discover`` returns the schema every batch
    will have; ``read`` streams the batches.
    """

    options_model: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    capabilities: ClassVar[SourceCapabilities] = SourceCapabilities()

    def __init__(self, options: ConnectorOptions) -> None:
        self.options = options

    def check(self) -> None:  # noqa: B027 - a preflight is optional; the default has nothing to check
        """Preflight: raise :class:`~conduit.errors.ConnectorError` with a readable message."""

    @abstractmethod
    def discover(self) -> pa.Schema:
        """The schema of the stream (declared, stored, or inferred from a sample)."""

    @abstractmethod
    def read(self, request: ReadRequest) -> Iterator[SourceBatch]:
        """Yield batches with ``request.schema``; raise ``DataError`` naming file/line/column."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release connections and file handles. Called once, after reading, even on failure."""


class LoadSession(ABC):
    """One entity's load into a destination: ``write`` batches, then ``commit`` or ``abort``.

    Used as a context manager, a session that leaves the block without ``commit`` is aborted.
    """

    committed = False

    @abstractmethod
    def write(self, batch: pa.RecordBatch) -> None:
        """Write one batch (not yet visible to readers when the destination is atomic)."""

    @abstractmethod
    def commit(self, state: Mapping[str, Any]) -> None:
        """Make everything written visible at once, together with ``state`` where it can be stored."""

    @abstractmethod
    def abort(self) -> None:
        """Discard everything written; leave the target as it was. Must not raise on a second call."""

    def apply_schema_changes(self, statements: Sequence[str]) -> None:
        """Run ``statements`` (from :meth:`Destination.plan_schema_changes`) inside this load, before
        the first ``write``, so they commit or roll back with the data. Default: nothing to run."""
        if statements:
            raise ConnectorError(
                f"{type(self).__name__} cannot apply schema changes: {'; '.join(statements)}"
            )

    def __enter__(self) -> LoadSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.abort()


class Destination(ABC):
    """Where an entity's batches land (a file, a directory of parts, a table).

    Subclasses set ``options_model`` and ``capabilities``; ``open`` starts a :class:`LoadSession`.
    """

    options_model: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    capabilities: ClassVar[DestinationCapabilities] = DestinationCapabilities()

    def __init__(self, options: ConnectorOptions) -> None:
        self.options = options

    def check(self) -> None:  # noqa: B027 - a preflight is optional; the default has nothing to check
        """Preflight: raise :class:`~conduit.errors.ConnectorError` with a readable message."""

    def current_schema(self) -> pa.Schema | None:
        """The schema of what is already at the target, or ``None`` when there is nothing yet."""
        return None

    def stored_schema(self, incoming: pa.Schema) -> pa.Schema:
        """The schema ``incoming`` data would have once stored here and read back, in the terms of
        :meth:`current_schema` (a database stores ``timestamp[s]`` as microseconds, ``int8`` as
        ``smallint``...). The engine compares this, not ``incoming``, with ``current_schema()``, so
        appending the same data twice is never mistaken for a schema change. Default: unchanged."""
        return incoming

    def target_id(self) -> str:
        """What this destination writes to, as a stable text (a table's name, a path): part of the
        identity of the state it stores (see :class:`StateKey`), so a state is never found by a
        target it does not describe. Default: the connector type and its options, secrets left out;
        a destination overrides it to name only what decides where the data lands."""
        options = self.options.model_dump(mode="json", exclude=_secret_fields(self.options))
        return f"{type(self).__module__}.{type(self).__qualname__}:{json.dumps(options, sort_keys=True)}"

    @abstractmethod
    def open(self, request: WriteRequest) -> LoadSession:
        """Start a load session for one entity."""

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release what the destination keeps between calls (a connection its preflight, state reads
        and successive sessions share). Called once, when the engine is done with it, even on
        failure; sessions are committed or aborted before."""

    # -- schema evolution (only with ``capabilities.schema_changes``) -----------------------------

    def plan_schema_changes(self, target: pa.Schema, changes: Sequence[ColumnChange]) -> list[str]:
        """The exact statements that turn the current target into ``target`` by making ``changes``
        (added columns, widened types), shown in a plan and then run verbatim. Default: none (a file
        destination simply writes its next parts with ``target``)."""
        return []

    def apply_schema_changes(
        self, key: StateKey, statements: Sequence[str], state: Mapping[str, Any] | None
    ) -> None:
        """``conduit schema approve``: run ``statements`` outside a load and store ``state`` (with the
        new accepted schema) together, atomically where the destination can. Default (no statements):
        store the state where the destination keeps it."""
        if statements:
            raise ConnectorError(
                f"{type(self).__name__} cannot apply schema changes: {'; '.join(statements)}"
            )
        if self.capabilities.stores_state:
            self.write_state(key, state)

    # -- state (only with ``capabilities.stores_state``) ------------------------------------------
    # Every state is identified by this destination's target together with ``key`` (flow and
    # entity): never by the entity's name alone, which another flow may use for another target.

    def read_state(self, key: StateKey) -> dict[str, Any] | None:
        """The state last committed with ``key``'s data at this target, or ``None``."""
        raise ConnectorError(f"{type(self).__name__} does not store state")

    def write_state(self, key: StateKey, state: Mapping[str, Any] | None) -> None:
        """Replace ``key``'s state outside a load (``conduit state set/reset``); ``None`` deletes."""
        raise ConnectorError(f"{type(self).__name__} does not store state")

    def lock(self, key: StateKey) -> AbstractContextManager[None]:
        """Hold ``key`` at this target for one run; raise :class:`ConnectorError` at once (never
        wait) when another run holds it, naming who does. Released on exit, and by the process dying.
        A destination whose lock can be lost while the run goes on (a database session ended by the
        server) must check, inside every commit of ``key``, that it still holds it, and fail the
        commit when it does not."""
        raise ConnectorError(f"{type(self).__name__} does not store state")


def _secret_fields(options: BaseModel) -> set[str]:
    return {
        name
        for name, value in options
        if isinstance(value, SecretStr) or (isinstance(value, BaseModel) and _secret_fields(value))
    }
