"""The malformed-input corpus: bad CSV through the real CLI, with ``on_error: dlq`` and ``fail``.

Each :class:`Case` is an input file (its exact bytes, also stored as ``tests/fixtures/malformed/<name>.csv``
so a case can be run by hand) and what must happen to it in each mode:

* :class:`Loaded` -- exit 0, that many rows loaded, nothing rejected;
* :class:`Dlq` -- exit 0, that many rows loaded, and exactly these rows rejected: each rejected row is
  one JSON object in ``.conduit/dlq/malformed/data/*.jsonl`` with its reason, data row and line;
* :class:`Error` -- exit 1 (or 2), one ``error:`` line naming the file and where in it, nothing written
  to the destination.

In every run ``rows_read == rows_loaded + rows_rejected`` in the ``--json`` report and no traceback is
printed. Rows are data rows from 1 (the header excluded, rejected rows included), lines are physical
lines from 1 (the header is line 1, a quoted line break starts a new line).

The runs are subprocesses (about a second each), started all at once on a pool of ``os.cpu_count()``
threads when the first test of this module needs one. ``python tests/test_malformed_corpus.py``
rewrites the stored fixture files from the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

CORPUS = Path(__file__).resolve().parent / "fixtures" / "malformed"
FLOW = "malformed"  # the flow file is malformed.yml, so the DLQ is .conduit/dlq/malformed/data/
DLQ_KEYS = {
    "id", "run_id", "flow", "entity", "file", "line", "row", "rule", "reason", "message", "column", "values",
    "raw", "at",
}  # fmt: skip


@dataclass(frozen=True)
class Loaded:
    rows: int


@dataclass(frozen=True)
class Reject:
    reason: str
    row: int
    line: int
    column: str | None = None


@dataclass(frozen=True)
class Dlq:
    loaded: int
    rejected: tuple[Reject, ...]


@dataclass(frozen=True)
class Error:
    fragments: tuple[str, ...]
    """Each must be in the ``error:`` line (case-insensitive); name the file and line/row/column."""
    exit_code: int = 1


Outcome = Loaded | Dlq | Error


@dataclass(frozen=True)
class Case:
    name: str
    content: bytes
    dlq: Outcome
    fail: Outcome | None = None
    """Also run with ``on_error: fail`` (a representative set of cases)."""
    columns: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)


def reject(reason: str, row: int, line: int, column: str | None = None) -> Reject:
    """A row rejected for its value in ``column``."""
    return Reject(reason, row, line, column)


def field_count(row: int, line: int) -> Reject:
    """A record rejected for its number of fields."""
    return Reject("field_count", row, line)


BIG = b"x" * 200_000
ZIPS = b"zip,n\n" + b"".join(b"%d,%d\n" % (10000 + i, i) for i in range(3000)) + b"AB-12,3000\n13000,3001\n"

CASES: list[Case] = [
    # -- encodings and bytes ------------------------------------------------------------------------
    Case("utf8_bom", b"\xef\xbb\xbfid,name\n1,a\n2,b\n", Loaded(2), Loaded(2), columns={"id": "int64"}),
    Case(
        "utf8_bom_ragged",
        b"\xef\xbb\xbfid,name\n1,a\n2\n3,c\n",
        Dlq(2, (field_count(2, 3),)),
    ),
    Case("nul_in_string", b"id,name\n1,a\x00b\n2,c\n", Loaded(2)),
    Case(
        "nul_in_number",
        b"id,n\n1,2\n2,\x003\n3,4\n",
        Dlq(2, (reject("not_a_number", 2, 3, "n"),)),
        columns={"n": "int64"},
    ),
    Case(
        "utf16le_without_bom",
        "id,name\n1,a\n2,b\n".encode("utf-16-le"),
        Error(("input.csv:1", "NUL bytes", "utf-16")),
        Error(("input.csv:1", "NUL bytes", "utf-16")),
    ),
    Case(
        "utf16le_without_bom_auto",
        "id,name\n1,a\n2\n".encode("utf-16-le"),
        Dlq(1, (field_count(2, 3),)),
        options={"encoding": "auto"},
    ),
    Case(
        "utf16_with_bom_auto",
        "id,city\n1,Zürich\n2,東京\n".encode("utf-16"),
        Loaded(2),
        options={"encoding": "auto"},
    ),
    Case(
        "latin1_without_encoding",
        "id,city\n1,Zürich\n2,Bern\n3,Genève\n".encode("latin-1"),
        Dlq(1, (reject("invalid_utf8", 1, 2, "city"), reject("invalid_utf8", 3, 4, "city"))),
        Error(("input.csv:2", "row 1", "column 'city'", "not valid utf-8")),
    ),
    Case(
        "latin1_with_encoding",
        "id,city\n1,Zürich\n2,Bern\n3,Genève\n".encode("latin-1"),
        Loaded(3),
        Loaded(3),
        options={"encoding": "latin-1"},
    ),
    Case(
        "latin1_with_encoding_and_a_bad_number",
        "id,city,n\n1,Zürich,1\n2,Genève,zwei\n".encode("latin-1"),
        Dlq(1, (reject("not_a_number", 2, 3, "n"),)),
        columns={"n": "int64"},
        options={"encoding": "latin-1"},
    ),
    Case(
        "cp1252_undefined_byte",
        b"id,s\n1,ok\n2,bad\x81\n3,fine\n",
        Dlq(2, (reject("invalid_text", 2, 3, "s"),)),
        options={"encoding": "cp1252"},
    ),
    Case(
        "invalid_utf8_in_number_column",
        b"id,n\n1,2\n2,\xff\n3,4\n",
        Dlq(2, (reject("invalid_utf8", 2, 3, "n"),)),
        columns={"n": "int64"},
    ),
    Case(
        "ragged_row_with_invalid_utf8",
        b"a,b,c\n1,2,3\n4,caf\xe9\n5,6,7\n",
        Dlq(2, (field_count(2, 3),)),
    ),
    # -- records ----------------------------------------------------------------------------------------
    Case(
        "quoted_newlines",
        b'id,text\n1,"line one\nline two"\n2,"a\r\nb"\n3,plain\n',
        Loaded(3),
    ),
    Case(
        "quoted_newlines_then_a_bad_value",
        b'id,text,n\n1,"two\nlines",1\n2,"three\nphysical\nlines",2\n3,x,three\n4,y,4\n',
        Dlq(3, (reject("not_a_number", 3, 7, "n"),)),
        Error(("input.csv:7", "row 3", "column 'n'", "'three'")),
        columns={"n": "int64"},
    ),
    Case(
        "ragged_short",
        b"a,b,c\n1,2,3\n4,5\n6,7,8\n",
        Dlq(2, (field_count(2, 3),)),
        Error(("input.csv:3", "row 2", "expected 3 fields, found 2")),
    ),
    Case(
        "ragged_long",
        b"a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n",
        Dlq(2, (field_count(2, 3),)),
    ),
    Case(
        "ragged_many",
        b"a,b\n1\n2,2\n3,3,3\n4,4\n5\n\n6,6,6,6\n7,7\n",
        Dlq(3, (field_count(1, 2), field_count(3, 4), field_count(5, 6), field_count(6, 8))),
    ),
    Case(
        "trailing_delimiter_in_rows",
        b"a,b\n1,2,\n3,4\n",
        Dlq(1, (field_count(1, 2),)),
    ),
    Case(
        "trailing_delimiter_everywhere",
        b"a,b,\n1,2,\n3,4,\n",
        Error(("input.csv:1", "empty column name", "column 3")),
    ),
    Case(
        "unbalanced_quote_at_eof",
        b'a,b\n1,2\n3,"oops\n4,5\n',
        Error(("input.csv:3", "row 2", "column 'b'", "unterminated quoted value")),
        Error(("input.csv:3", "row 2", "column 'b'", "unterminated quoted value")),
    ),
    Case(
        "unbalanced_quote_at_eof_after_ragged_rows",
        b'a,b,c\n1,2,3\n4\n5,6,7,8\n9,"open,10\n11,12,13\n',
        Error(("input.csv:5", "row 4", "unterminated quoted value")),
    ),
    Case(
        # The quote opened on line 2 closes on line 4: rows 1-3 read as one value, which is no int64.
        "unbalanced_quote_mid_file",
        b'a,b\n1,"x\n2,3\n4,"y\n5,6\n',
        Dlq(1, (reject("not_a_number", 1, 2, "b"),)),
        Error(("input.csv:2", "row 1", "column 'b'")),
        columns={"a": "int64", "b": "int64"},
    ),
    Case("escaped_quotes", b'a,b\n1,"say ""hi"""\n2,5"\n', Loaded(2)),
    Case("crlf_lf_mix", b"a,b\r\n1,2\r\n3,4\n5,6\r\n", Loaded(3)),
    Case(
        "crlf_lf_cr_mix_with_bad_rows",
        b"a,b\r\n1,2\n3\r\n4,5\r6,7\n8\r\n",
        Dlq(3, (field_count(2, 3), field_count(5, 6))),
    ),
    Case(
        "blank_lines",
        b"a,b\n\n1,2\n\n\n3\n4,5\n\n",
        Dlq(2, (field_count(2, 6),)),
    ),
    Case("no_final_newline", b"a,b\n1,2\n3,4", Loaded(2)),
    Case(
        "skipped_lines_before_the_header",
        b"# exported by a tool\n# on a Monday\na,b\n1,2\n3\n",
        Dlq(1, (field_count(2, 5),)),
        options={"skip_rows": 2},
    ),
    Case(
        "a_200kb_field",
        b'id,blob\n1,"' + BIG + b'"\n2,small\n3\n',
        Dlq(2, (field_count(3, 4),)),
    ),
    Case(
        "a_200kb_field_longer_than_the_block",
        b"id,blob\n1," + BIG + b"\n2,small\n",
        Error(("input.csv:2", "row 1", "cannot parse the record starting here", "field limit")),
        Error(("input.csv:2", "row 1", "cannot parse the record starting here", "field limit")),
        options={"block_size": 65536},
    ),
    Case(
        "only_bad_rows",
        b"id,n\n1,x\n2\n3,y\n",
        Dlq(0, (reject("not_a_number", 1, 2, "n"), field_count(2, 3), reject("not_a_number", 3, 4, "n"))),
        columns={"n": "int64"},
    ),
    # -- headers --------------------------------------------------------------------------------------
    Case(
        "duplicate_header_names",
        b"id,name,id\n1,a,2\n",
        Error(("input.csv:1", "column 'id'", "duplicate column name")),
        Error(("input.csv:1", "column 'id'", "duplicate column name")),
    ),
    Case(
        "empty_header_name",
        b"id,,name\n1,2,3\n",
        Error(("input.csv:1", "empty column name", "column 2")),
    ),
    Case("only_a_header", b"id,name\n", Loaded(0), Loaded(0)),
    Case(
        "only_a_header_with_declared_columns",
        b"id,amount\n",
        Loaded(0),
        columns={"id": "int64", "amount": "decimal(10,2)"},
    ),
    Case("empty_file", b"", Error(("input.csv", "file is empty")), Error(("input.csv", "file is empty"))),
    Case(
        "wrong_delimiter",
        b"id;name;amount\n1;a;1,5\n2;b;2\n",
        Dlq(1, (field_count(1, 2),)),
    ),
    Case(
        "wrong_delimiter_with_declared_columns",
        b"id;name;amount\n1;a;1,5\n2;b;2\n",
        Error(("input.csv", "'amount'", "its columns: id;name;amount")),
        columns={"amount": "decimal(10,2)"},
    ),
    # -- values -------------------------------------------------------------------------------------
    Case(
        "int64_overflow",
        b"id,n\n1,9223372036854775807\n2,9223372036854775808\n3,-9223372036854775809\n4,-9223372036854775808\n",
        Dlq(2, (reject("overflow", 2, 3, "n"), reject("overflow", 3, 4, "n"))),
        Error(("input.csv:3", "row 2", "column 'n'", "int64")),
        columns={"n": "int64"},
    ),
    Case(
        "bad_dates",
        b"id,d\n1,2024-02-29\n2,2023-02-29\n3,2024-13-01\n4,01/02/2024\n5,2024-1-5\n6,2024-12-31\n",
        Dlq(
            2,
            tuple(reject("bad_date", row, row + 1, "d") for row in (2, 3, 4, 5)),
        ),
        Error(("input.csv:3", "row 2", "column 'd'", "'2023-02-29'")),
        columns={"d": "date"},
    ),
    Case(
        "decimal_39_digits_into_38",
        b"id,d\n1,1.50\n2,123456789012345678901234567890123456789\n3,340282366920938463463374607431768211457\n",
        Dlq(1, (reject("overflow", 2, 3, "d"), reject("overflow", 3, 4, "d"))),
        Error(("input.csv:3", "row 2", "column 'd'")),
        columns={"d": "decimal(38,2)"},
    ),
    Case(
        "decimal_too_many_places",
        b"id,d\n1,1.25\n2,1.255\n3,1.250\n4,1e2\n",
        Dlq(3, (reject("precision_loss", 2, 3, "d"),)),
        columns={"d": "decimal(10,2)"},
    ),
    Case(
        "timestamp_without_offset_into_timestamptz",
        b"id,ts\n1,2024-01-01T10:00:00Z\n2,2024-01-01T10:00:00\n3,2024-01-01 10:00:00+02:00\n",
        Dlq(2, (reject("missing_offset", 2, 3, "ts"),)),
        Error(("input.csv:3", "row 2", "column 'ts'")),
        columns={"ts": "timestamptz"},
    ),
    Case(
        "bad_timestamps",
        b"id,ts\n1,2024-01-01T10:00:00\n2,2024-01-01T25:00:00\n3,yesterday\n4,2024-01-01 10:00\n",
        Dlq(2, (reject("bad_timestamp", 2, 3, "ts"), reject("bad_timestamp", 3, 4, "ts"))),
        columns={"ts": "timestamp"},
    ),
    Case(
        "bad_booleans",
        b"id,b\n1,true\n2,False\n3,yes\n4,TRUE\n5,tRuE\n6,0\n",
        Dlq(4, (reject("bad_boolean", 3, 4, "b"), reject("bad_boolean", 5, 6, "b"))),
        columns={"b": "bool"},
    ),
    Case(
        "custom_booleans",
        b"id,b\n1,Y\n2,N\n3,y\n",
        Dlq(2, (reject("bad_boolean", 3, 4, "b"),)),
        columns={"b": "bool"},
        options={"true_values": ["Y"], "false_values": ["N"]},
    ),
    Case(
        "whitespace_around_numbers",
        b"id,n,f,d\n1, 2 ,\t3.5, 4.25\n2,  4,5.0  ,6\n",
        Loaded(2),
        Loaded(2),
        columns={"n": "int64", "f": "float64", "d": "decimal(10,2)"},
    ),
    Case(
        "quoted_numbers",
        b'id,n,d\n"1","2","3.5"\n"4","5","6"\n',
        Loaded(2),
        columns={"n": "int64", "d": "decimal(5,1)"},
    ),
    Case(
        "quoted_empty_and_null_numbers",
        b'id,n\n1,""\n2,\n3,"NA"\n4,NA\n',
        Dlq(2, (reject("not_a_number", 1, 2, "n"), reject("not_a_number", 3, 4, "n"))),
        columns={"n": "int64"},
        options={"null_values": ["", "NA"]},
    ),
    Case(
        "nan_and_inf_into_float",
        b"id,f\n1,NaN\n2,inf\n3,-inf\n4,nan\n5,Infinity\n6,-0.0\n",
        Loaded(6),
        Loaded(6),
        columns={"f": "float64"},
    ),
    Case(
        # 1e400 is not a double: never loaded as infinity (only inf/infinity are).
        "1e400_into_float64",
        b"id,f\n1,1e308\n2,1e400\n3,-1e400\n4,5\n",
        Dlq(2, (reject("overflow", 2, 3, "f"), reject("overflow", 3, 4, "f"))),
        Error(("input.csv", "row 2", "column 'f'", "'1e400' is too large for double")),
        columns={"f": "float64"},
    ),
    Case(
        # The types are inferred from the first infer_rows rows: zip looks like int64 in the first 1000.
        "inferred_type_meets_a_later_value",
        ZIPS,
        Dlq(3001, (reject("not_a_number", 3001, 3002, "zip"),)),
        Error(("input.csv:3002", "row 3001", "column 'zip'", "inferred from the first rows")),
        options={"infer_rows": 1000},
    ),
    Case(
        "ragged_row_in_the_first_block_of_an_inferred_file",
        b"id,n\n1,2\n3\n4,x\n",
        Dlq(2, (field_count(2, 3),)),
        Error(("input.csv:3", "row 2", "expected 2 fields, found 1")),
    ),
]


# -- running ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    directory: Path
    process: subprocess.CompletedProcess[str]

    @property
    def output(self) -> str:
        return self.process.stdout + self.process.stderr

    def report(self) -> dict[str, Any]:
        start = self.process.stdout.find("{")
        assert start >= 0, f"no --json report:\n{self.output}"
        report: dict[str, Any] = json.loads(self.process.stdout[start:])
        return report

    def dlq_records(self) -> list[dict[str, Any]]:
        folder = self.directory / ".conduit" / "dlq" / FLOW / "data"
        lines = [line for part in sorted(folder.glob("*.jsonl")) for line in part.read_text().splitlines()]
        return [json.loads(line) for line in lines if line.strip()]

    def parquet_rows(self) -> int | None:
        import pyarrow.parquet as pq

        parts = sorted((self.directory / "out" / "data").glob("*.parquet"))
        return sum(pq.ParquetFile(part).metadata.num_rows for part in parts) if parts else None

    def destination_files(self) -> list[Path]:
        out = self.directory / "out"
        return sorted(path for path in out.rglob("*") if path.is_file()) if out.exists() else []


def run_case(case: Case, mode: str, directory: Path) -> Run:
    directory.mkdir(parents=True)
    (directory / "input.csv").write_bytes(case.content)
    options: dict[str, Any] = {"path": "input.csv", **case.options}
    if case.columns:
        options["columns"] = dict(case.columns)
    flow = {
        "version": 1,
        "entities": {
            "data": {
                "source": {"type": "csv", "options": options},
                "destination": {"type": "parquet", "options": {"path": "out/data"}},
                "mode": "append",
                "on_error": mode,
            }
        },
    }
    (directory / f"{FLOW}.yml").write_text(yaml.safe_dump(flow, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONDUIT_")}
    process = subprocess.run(
        [sys.executable, "-m", "conduit", "run", f"{FLOW}.yml", "--json"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return Run(directory, process)


RUNS = [(case, mode) for case in CASES for mode in ("dlq", "fail") if getattr(case, mode) is not None]


class Runs:
    """Every selected (case, mode) run, started at once on a thread pool; each test waits for its own."""

    def __init__(self, selected: list[str], base: Path) -> None:
        self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2)
        by_id = {f"{case.name}-{mode}": (case, mode) for case, mode in RUNS}
        self._futures: dict[str, Future[Run]] = {
            key: self._pool.submit(run_case, *by_id[key], base / key) for key in selected if key in by_id
        }

    def get(self, key: str) -> Run:
        return self._futures[key].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    here = Path(__file__).resolve()
    selected = [
        item.callspec.id
        for item in request.session.items
        if Path(str(item.fspath)).resolve() == here and hasattr(item, "callspec")
    ]
    pool = Runs(selected, tmp_path_factory.mktemp("malformed"))
    yield pool
    pool.close()


def _rule(reason: str) -> str:
    if reason == "field_count":
        return "parse"
    return "utf8" if reason in ("invalid_utf8", "invalid_text") else "coerce"


@pytest.mark.parametrize(("case", "mode"), RUNS, ids=[f"{case.name}-{mode}" for case, mode in RUNS])
def test_malformed_input(case: Case, mode: str, runs: Runs) -> None:
    run = runs.get(f"{case.name}-{mode}")
    expected: Outcome = getattr(case, mode)
    assert "Traceback" not in run.output, run.output
    report = run.report()
    entity = report["entities"][0]
    assert entity["rows_read"] == entity["rows_loaded"] + entity["rows_rejected"], entity

    if isinstance(expected, Error):
        assert run.process.returncode == expected.exit_code, run.output
        errors = [line for line in run.process.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, run.process.stderr
        for fragment in expected.fragments:
            assert fragment.lower() in errors[0].lower(), f"{fragment!r} not in {errors[0]!r}"
        assert entity["rows_loaded"] == 0
        assert run.destination_files() == []
        return

    assert run.process.returncode == 0, run.output
    records = run.dlq_records()
    if isinstance(expected, Loaded):
        assert (entity["rows_loaded"], entity["rows_rejected"]) == (expected.rows, 0), entity
        assert records == []
        assert (run.parquet_rows() or 0) == expected.rows
        return

    assert (entity["rows_loaded"], entity["rows_rejected"]) == (expected.loaded, len(expected.rejected)), (
        entity,
        records,
    )
    assert (run.parquet_rows() or 0) == expected.loaded
    assert len(records) == len(expected.rejected), records
    records.sort(key=lambda record: record["row"])
    for record in records:
        assert set(record) == DLQ_KEYS, record
        assert (record["flow"], record["entity"]) == (FLOW, "data")
        assert record["file"].endswith("input.csv")
        assert record["rule"] == _rule(record["reason"]), record
        if record["rule"] == "parse":
            assert record["values"] is None and record["raw"], record
        else:
            assert isinstance(record["values"], dict) and record["column"] in record["values"], record
    got = [
        Reject(r["reason"], r["row"], r["line"], r["column"] if want.column is not None else None)
        for r, want in zip(records, expected.rejected, strict=True)
    ]
    assert got == list(expected.rejected), records


# -- the stored corpus -------------------------------------------------------------------------------


def test_the_corpus_is_big_enough_and_the_names_unique() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


def describe(outcome: Outcome | None) -> str:
    if outcome is None:
        return ""
    if isinstance(outcome, Loaded):
        return f"loaded {outcome.rows}"
    if isinstance(outcome, Error):
        return f"error (exit {outcome.exit_code}): " + "; ".join(
            f"`{fragment}`" for fragment in outcome.fragments
        )
    rejected = ", ".join(f"{r.reason} row {r.row} line {r.line}" for r in outcome.rejected)
    return f"loaded {outcome.loaded}, rejected {len(outcome.rejected)}: {rejected}"


def corpus_readme() -> str:
    rows = []
    for case in CASES:
        settings = {**case.options, **({"columns": dict(case.columns)} if case.columns else {})}
        shown = json.dumps(settings, ensure_ascii=False) if settings else ""
        rows.append(f"| `{case.name}.csv` | {shown} | {describe(case.dlq)} | {describe(case.fail)} |")
    return (
        "# The malformed-input corpus\n\n"
        "Small CSV files with something wrong (or merely unusual) in them, byte for byte, and what Conduit\n"
        "does with each through the real CLI (`conduit run --json`, a csv source into a parquet destination)\n"
        "with `on_error: dlq` and, for a representative set, `on_error: fail`. Rows are data rows from 1\n"
        "(rejected ones included), lines physical lines from 1 (the header is line 1).\n\n"
        "Generated from the case table in `tests/test_malformed_corpus.py`, which checks every outcome; edit\n"
        "the table, then run `python tests/test_malformed_corpus.py` to rewrite this directory.\n\n"
        "| file | source options | `on_error: dlq` | `on_error: fail` |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def test_the_stored_fixture_files_are_the_cases() -> None:
    stored = {path.stem: path.read_bytes() for path in CORPUS.glob("*.csv")}
    assert stored == {case.name: case.content for case in CASES}, (
        "tests/fixtures/malformed/ is out of date: run python tests/test_malformed_corpus.py"
    )
    assert (CORPUS / "README.md").read_text(encoding="utf-8") == corpus_readme(), (
        "tests/fixtures/malformed/README.md is out of date: run python tests/test_malformed_corpus.py"
    )


def write_corpus() -> None:
    CORPUS.mkdir(parents=True, exist_ok=True)
    for path in CORPUS.glob("*.csv"):
        path.unlink()
    for case in CASES:
        (CORPUS / f"{case.name}.csv").write_bytes(case.content)
    (CORPUS / "README.md").write_text(corpus_readme(), encoding="utf-8")


if __name__ == "__main__":
    write_corpus()
