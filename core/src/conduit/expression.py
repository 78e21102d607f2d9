"""A small boolean row-predicate language, compiled to ``pyarrow.compute`` calls (never ``eval``).

Used by the ``expression`` check (``expression: {expr: "amount > 0 and status != 'void'"}``). A
hand-written tokenizer and recursive-descent parser turn the text into a tree of :class:`Node` objects;
:meth:`Expression.evaluate` walks the tree once per record batch, so every operation is one vectorised
Arrow kernel over the whole batch.

Grammar, loosest binding first (keywords are case-insensitive; column names are not)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | predicate
    predicate  := additive [ compare_op additive
                           | ["not"] "in" "(" item ("," item)* ")"
                           | "is" ["not"] "null" ]
    compare_op := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    additive   := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    item       := ["-" | "+"] literal
    unary      := ("-" | "+") unary | primary
    primary    := literal | column | function "(" expr ("," expr)* ")" | "(" expr ")"
    literal    := integer | decimal | string | "true" | "false" | "null"
                | "date" string | "timestamp" string
    column     := name | `any name`        (backquotes for names with spaces; `` doubles a backquote)
    function   := length | lower | upper | abs | coalesce

Semantics follow SQL: a comparison with NULL is NULL, ``and``/``or`` use three-valued logic, and a row
whose predicate is NULL passes (like a SQL ``CHECK`` constraint). A literal next to a column takes the
column's type where it can (``day >= '2024-01-01'`` compares dates; ``ts < timestamp '2024-01-01'``
reads a naive timestamp in the column's time zone). ``/`` is true division (two integers give a float)
and a division by zero gives NULL.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "Expression",
    "ExpressionDataError",
    "ExpressionError",
    "ExpressionTypeError",
    "parse",
    "plain",
    "to_scalar",
]


class ExpressionError(ValueError):
    """The expression text does not parse. The message names the expression and the column."""

    def __init__(self, text: str, message: str, position: int | None = None, hint: str | None = None) -> None:
        self.text = text
        self.position = position  # 0-based offset into ``text``; None when the error has no place
        where = f" at column {position + 1}" if position is not None else ""
        note = f" ({hint})" if hint else ""
        super().__init__(f"expression {text!r}: {message}{where}{note}")


class ExpressionTypeError(ValueError):
    """The expression does not fit the batch's column types (e.g. ``amount > 'abc'`` on an int)."""


class ExpressionDataError(ValueError):
    """Evaluating the expression failed on the data itself (an integer overflow)."""


# ----------------------------------------------------------------------------------------- values


_WIDE = Context(prec=200)  # Decimal arithmetic wide enough for any decimal256 value


def _as_decimal(value: Any) -> Decimal:
    """A number (or a numeric string) as an exact Decimal; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a true/false value is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if math.isnan(value):
            raise ValueError("NaN is not comparable")
        result = Decimal(repr(value))  # the number as written (0.1, not its binary expansion)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("not a number") from None
        if result.is_nan():
            raise ValueError("NaN is not comparable")
    else:
        raise ValueError("not a number")
    return result


def _as_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not an ISO-8601 date or timestamp") from None
    raise ValueError("not a date or timestamp")


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime) or isinstance(value, str) and "T" in value.upper():
        moment = _as_datetime(value)
        if moment.tzinfo is not None or moment.time() != dt.time(0):
            raise ValueError("a date column needs a date, not a timestamp with a time of day")
        return moment.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return _as_date(_as_datetime(value))
    raise ValueError("not a date")


_UNIT_MICROS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}


def _timestamp_scalar(value: Any, typ: pa.TimestampType, finer_ok: bool) -> pa.Scalar:
    moment = _as_datetime(value)
    tz = typ.tz
    if moment.tzinfo is not None and tz is None:
        # an instant against wall-clock values: compare in UTC (documented)
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    elif moment.tzinfo is None and tz is not None:
        # a wall-clock bound against instants: read it in the column's time zone
        naive = pa.array([moment], pa.timestamp("us"))
        try:
            moment = pc.assume_timezone(naive, timezone=tz)[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ValueError(f"cannot read it in time zone {tz}: {exc}") from None
    micros = moment.microsecond
    if micros % _UNIT_MICROS[typ.unit]:
        if not finer_ok:
            raise ValueError(f"it is more precise than the column's unit ({typ.unit})")
        return pa.scalar(moment, pa.timestamp("us", tz=tz))
    return pa.scalar(moment, typ)


def to_scalar(value: Any, typ: pa.DataType, *, finer_ok: bool = False) -> pa.Scalar:
    """``value`` (a YAML or literal value) as an exact Arrow scalar of type ``typ``.

    Raises ValueError with a short reason (``not an integer``, ``out of range for int8``) when the
    value does not convert exactly. ``finer_ok`` lets a timestamp more precise than the column's unit
    come back with unit ``us`` (Arrow compares mixed units exactly) instead of failing.
    """
    if value is None:
        return pa.scalar(None, typ)
    if pa.types.is_dictionary(typ):
        return to_scalar(value, typ.value_type, finer_ok=finer_ok)
    if pa.types.is_boolean(typ):
        if isinstance(value, bool):
            return pa.scalar(value, typ)
        raise ValueError("a true/false column needs true or false")
    if pa.types.is_integer(typ):
        number = _as_decimal(value)
        if not number.is_finite() or number != number.to_integral_value():
            raise ValueError("not an integer")
        try:
            return pa.scalar(int(number), typ)
        except (OverflowError, pa.ArrowInvalid):
            raise ValueError(f"out of range for {typ}") from None
    if pa.types.is_floating(typ):
        if isinstance(value, float):
            return pa.scalar(value, typ)
        return pa.scalar(float(_as_decimal(value)), typ)
    if pa.types.is_decimal(typ):
        number = _as_decimal(value)
        if not number.is_finite():
            raise ValueError(f"out of range for {typ}")
        quantum = Decimal(1).scaleb(-typ.scale)
        exact = number.quantize(quantum, context=_WIDE) if abs(number.adjusted()) < 100 else None
        if exact is None or exact != number:
            raise ValueError(f"has more than {typ.scale} decimal places")
        try:
            return pa.scalar(exact, typ)
        except (pa.ArrowInvalid, OverflowError):
            raise ValueError(f"out of range for {typ}") from None
    if pa.types.is_timestamp(typ):
        return _timestamp_scalar(value, typ, finer_ok)
    if pa.types.is_date(typ):
        return pa.scalar(_as_date(value), typ)
    if pa.types.is_time(typ):
        if isinstance(value, str):
            try:
                value = dt.time.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("not an ISO-8601 time of day") from None
        if not isinstance(value, dt.time):
            raise ValueError("not a time of day")
        return pa.scalar(value, typ)
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_string_view(typ):
        if isinstance(value, str):
            return pa.scalar(value, typ)
        if isinstance(value, int) and not isinstance(value, bool):
            return pa.scalar(str(value), typ)
        raise ValueError("a string column needs a string")
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ):
        raw = value.encode() if isinstance(value, str) else value
        if not isinstance(raw, bytes):
            raise ValueError("a binary column needs a string or bytes")
        try:
            return pa.scalar(raw, typ)
        except (pa.ArrowInvalid, ValueError):
            raise ValueError(f"does not fit {typ}") from None
    raise ValueError(f"values of type {typ} are not supported")


def plain(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``array`` with dictionary encoding removed and views as their plain types, ready for kernels."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    typ = array.type
    if pa.types.is_dictionary(typ):
        return plain(array.dictionary_decode())
    if pa.types.is_string_view(typ):
        return array.cast(pa.large_string())
    if pa.types.is_binary_view(typ):
        return array.cast(pa.large_binary())
    return array


# ----------------------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class _Token:
    kind: str  # number, string, name, quoted_name, op, end
    text: str  # the source text of the token
    value: Any
    pos: int  # 0-based offset of the token in the expression


_DIGITS = frozenset("0123456789")
_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
_OPERATORS = ("<=", ">=", "<>", "!=", "==", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",")


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _DIGITS or ch == "." and i + 1 < n and text[i + 1] in _DIGITS:
            start = i
            while i < n and text[i] in _DIGITS:
                i += 1
            if i < n and text[i] == ".":
                i += 1
                while i < n and text[i] in _DIGITS:
                    i += 1
            if i < n and text[i] in "eE":
                j = i + 1
                if j < n and text[j] in "+-":
                    j += 1
                if j < n and text[j] in _DIGITS:
                    i = j
                    while i < n and text[i] in _DIGITS:
                        i += 1
            raw = text[start:i]
            value: Any
            if any(c in raw for c in "eE"):
                value = float(raw)
            elif "." in raw:
                value = Decimal(raw)
                if len(value.as_tuple().digits) > 38:
                    raise ExpressionError(text, f"number {raw} has more than 38 digits", start)
            else:
                value = int(raw)
                if not -(2**63) <= value < 2**63:
                    value = Decimal(raw)
                    if len(raw) > 38:
                        raise ExpressionError(text, f"number {raw} has more than 38 digits", start)
            tokens.append(_Token("number", raw, value, start))
        elif ch in "'\"":
            start, i, parts = i, i + 1, []
            while True:
                end = text.find(ch, i)
                if end < 0:
                    raise ExpressionError(text, "unterminated string", start)
                parts.append(text[i:end])
                if end + 1 < n and text[end + 1] == ch:  # a doubled quote is one quote
                    parts.append(ch)
                    i = end + 2
                    continue
                i = end + 1
                break
            tokens.append(_Token("string", text[start:i], "".join(parts), start))
        elif ch == "`":
            start, i, parts = i, i + 1, []
            while True:
                end = text.find("`", i)
                if end < 0:
                    raise ExpressionError(text, "unterminated `quoted name`", start)
                parts.append(text[i:end])
                if end + 1 < n and text[end + 1] == "`":
                    parts.append("`")
                    i = end + 2
                    continue
                i = end + 1
                break
            name = "".join(parts)
            if not name:
                raise ExpressionError(text, "empty `quoted name`", start)
            tokens.append(_Token("quoted_name", text[start:i], name, start))
        elif ch.isalpha() or ch == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
            raw = text[start:i]
            tokens.append(_Token("name", raw, raw, start))
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(_Token("op", op, op, i))
                    i += len(op)
                    break
            else:
                raise ExpressionError(text, f"unexpected {ch!r}", i)
    tokens.append(_Token("end", "", None, n))
    return tokens


# ------------------------------------------------------------------------------------------- tree

# What a node gives, as far as the parser can tell: "bool", "value" (not a condition), or "any".


@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Column(Node):
    name: str


@dataclass(frozen=True)
class Literal(Node):
    value: Any  # int, Decimal, float, str, bool, None, date or datetime


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "not" or "-"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # and, or, a comparison, or + - * /
    left: Node
    right: Node


@dataclass(frozen=True)
class InList(Node):
    operand: Node
    values: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True)
class IsNull(Node):
    operand: Node
    negated: bool


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


_COMPARISONS = {
    "=": "equal",
    "==": "equal",
    "!=": "not_equal",
    "<>": "not_equal",
    "<": "less",
    "<=": "less_equal",
    ">": "greater",
    ">=": "greater_equal",
}
_ARITHMETIC = {"+": "add_checked", "-": "subtract_checked", "*": "multiply_checked", "/": "divide"}
_FUNCTIONS = {"length": (1, 1), "lower": (1, 1), "upper": (1, 1), "abs": (1, 1), "coalesce": (2, None)}


def _kind(node: Node) -> str:
    if isinstance(node, InList | IsNull):
        return "bool"
    if isinstance(node, Unary):
        return "bool" if node.op == "not" else "value"
    if isinstance(node, Binary):
        return "value" if node.op in _ARITHMETIC else "bool"
    if isinstance(node, Literal):
        return "bool" if isinstance(node.value, bool) else "any" if node.value is None else "value"
    if isinstance(node, Call):
        return "any" if node.name == "coalesce" else "value"
    return "any"


def _start(node: Node) -> int:
    """Where the text of ``node`` begins (a binary node's ``pos`` is its operator)."""
    if isinstance(node, Binary):
        return _start(node.left)
    if isinstance(node, InList | IsNull):
        return _start(node.operand)
    return node.pos


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    # -- token helpers
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _is_keyword(self, word: str, offset: int = 0) -> bool:
        tok = self.tokens[min(self.i + offset, len(self.tokens) - 1)]
        return tok.kind == "name" and tok.text.lower() == word

    def _is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def _advance(self) -> _Token:
        tok = self.tok
        self.i += 1
        return tok

    def _error(self, expected: str | None = None, note: str | None = None) -> ExpressionError:
        tok = self.tok
        hint = f"expected {expected}" if expected else note
        what = "end of expression" if tok.kind == "end" else repr(tok.text)
        return ExpressionError(self.text, f"unexpected {what}", tok.pos, hint)

    def _expect_op(self, op: str) -> _Token:
        if not self._is_op(op):
            raise self._error(expected=repr(op))
        return self._advance()

    def _need(self, node: Node, want: str, what: str) -> None:
        """Refuse an operand that is (or is not) a condition, pointing at where the operand starts."""
        got = _kind(node)
        if got != "any" and got != want:
            if what == "the expression":  # the whole text: no one place to point at
                hint = "it must give true or false, e.g. 'amount > 0'"
                raise ExpressionError(self.text, "not a condition", None, hint)
            need = "a true/false condition" if want == "bool" else "a value, not a true/false condition"
            raise ExpressionError(self.text, f"{what} needs {need}", _start(node))

    # -- grammar
    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExpressionError(self.text, "the expression is empty")
        node = self._or()
        if self.tok.kind != "end":
            raise self._error()
        self._need(node, "bool", "the expression")
        return node

    def _or(self) -> Node:
        node = self._and()
        while self._is_keyword("or"):
            tok = self._advance()
            right = self._and()
            self._need(node, "bool", "'or'")
            self._need(right, "bool", "'or'")
            node = Binary(tok.pos, "or", node, right)
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._is_keyword("and"):
            tok = self._advance()
            right = self._not()
            self._need(node, "bool", "'and'")
            self._need(right, "bool", "'and'")
            node = Binary(tok.pos, "and", node, right)
        return node

    def _not(self) -> Node:
        if self._is_keyword("not"):
            tok = self._advance()
            operand = self._not()
            self._need(operand, "bool", "'not'")
            return Unary(tok.pos, "not", operand)
        return self._predicate()

    def _predicate(self) -> Node:
        left = self._additive()
        if self._is_op(*_COMPARISONS):
            tok = self._advance()
            right = self._additive()
            if self._is_op(*_COMPARISONS):
                raise self._error(note="comparisons do not chain: write 'a < b and b < c'")
            return Binary(tok.pos, tok.text, left, right)
        if self._is_keyword("in") or self._is_keyword("not") and self._is_keyword("in", 1):
            negated = self._is_keyword("not")
            tok = self._advance()
            if negated:
                self._advance()
            self._expect_op("(")
            values = [self._in_value()]
            while self._is_op(","):
                self._advance()
                values.append(self._in_value())
            self._expect_op(")")
            return InList(tok.pos, left, tuple(values), negated)
        if self._is_keyword("is"):
            tok = self._advance()
            negated = self._is_keyword("not")
            if negated:
                self._advance()
            if not self._is_keyword("null"):
                raise self._error(expected="'null'")
            self._advance()
            return IsNull(tok.pos, left, negated)
        return left

    def _in_value(self) -> Literal:
        tok = self.tok
        if self._is_op("-", "+") and self.tokens[self.i + 1].kind == "number":
            sign = self._advance().text
            number = self._advance().value
            return Literal(tok.pos, -number if sign == "-" else number)
        literal = self._literal()
        if literal is None:
            raise self._error(expected="a literal value")
        return literal

    def _additive(self) -> Node:
        node = self._term()
        while self._is_op("+", "-"):
            tok = self._advance()
            right = self._term()
            self._need(node, "value", f"{tok.text!r}")
            self._need(right, "value", f"{tok.text!r}")
            node = Binary(tok.pos, tok.text, node, right)
        return node

    def _term(self) -> Node:
        node = self._unary()
        while self._is_op("*", "/"):
            tok = self._advance()
            right = self._unary()
            self._need(node, "value", f"{tok.text!r}")
            self._need(right, "value", f"{tok.text!r}")
            node = Binary(tok.pos, tok.text, node, right)
        return node

    def _unary(self) -> Node:
        if self._is_op("-", "+"):
            tok = self._advance()
            operand = self._unary()
            self._need(operand, "value", f"unary {tok.text!r}")
            if tok.text == "+":
                return operand
            if isinstance(operand, Literal) and isinstance(operand.value, int | float | Decimal):
                return Literal(tok.pos, -operand.value)
            return Unary(tok.pos, "-", operand)
        return self._primary()

    def _literal(self) -> Literal | None:
        tok = self.tok
        if tok.kind == "number":
            self._advance()
            return Literal(tok.pos, tok.value)
        if tok.kind == "string":
            self._advance()
            return Literal(tok.pos, tok.value)
        if tok.kind == "name":
            word = tok.text.lower()
            if word in ("true", "false", "null"):
                self._advance()
                return Literal(tok.pos, {"true": True, "false": False, "null": None}[word])
            following = self.tokens[self.i + 1]
            if word in ("date", "timestamp") and following.kind == "string":
                self._advance()
                self._advance()
                try:
                    if word == "date":
                        return Literal(tok.pos, dt.date.fromisoformat(following.value))
                    return Literal(tok.pos, dt.datetime.fromisoformat(following.value))
                except ValueError:
                    example = "'2024-01-31'" if word == "date" else "'2024-01-31T12:00:00Z'"
                    raise ExpressionError(
                        self.text,
                        f"invalid {word} {following.text}",
                        following.pos,
                        f"write it like {example}",
                    ) from None
        return None

    def _primary(self) -> Node:
        tok = self.tok
        literal = self._literal()
        if literal is not None:
            return literal
        if self._is_op("("):
            self._advance()
            node = self._or()
            self._expect_op(")")
            return node
        if tok.kind == "quoted_name":
            self._advance()
            return Column(tok.pos, tok.value)
        if tok.kind == "name" and tok.text.lower() not in _KEYWORDS:
            self._advance()
            if not self._is_op("("):
                return Column(tok.pos, tok.text)
            name = tok.text.lower()
            if name not in _FUNCTIONS:
                known = ", ".join(sorted(_FUNCTIONS))
                raise ExpressionError(self.text, f"unknown function {tok.text!r}", tok.pos, f"known: {known}")
            self._advance()
            args = [self._or()]
            while self._is_op(","):
                self._advance()
                args.append(self._or())
            self._expect_op(")")
            low, high = _FUNCTIONS[name]
            if len(args) < low or high is not None and len(args) > high:
                count = f"{low}" if low == high else f"at least {low}"
                plural = "" if count == "1" else "s"
                raise ExpressionError(
                    self.text, f"{name}() takes {count} argument{plural}, got {len(args)}", tok.pos
                )
            for arg in args:
                self._need(arg, "value", f"{name}()")
            return Call(tok.pos, name, tuple(args))
        raise self._error()


def parse(text: str) -> Node:
    """Parse ``text`` into a tree; :class:`ExpressionError` (a ValueError) names the column at fault."""
    return _Parser(text).parse()


# ------------------------------------------------------------------------------------- evaluation

# A pa.Array or a pa.Scalar (pyarrow has no type stubs, so this is Any to the type checker).
Value: TypeAlias = Any


def _natural(value: Any) -> pa.Scalar:
    """A literal's own Arrow scalar, used when no column type is there to adopt."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return pa.scalar(value.astimezone(dt.UTC), pa.timestamp("us", tz="UTC"))
        return pa.scalar(value, pa.timestamp("us"))
    if isinstance(value, dt.date):
        return pa.scalar(value, pa.date32())
    return pa.scalar(value)


def _is_numeric(typ: pa.DataType) -> bool:
    return bool(pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ))


def _broadcast(value: Value, length: int) -> pa.Array:
    if isinstance(value, pa.Array):
        return value
    if not value.is_valid:
        return pa.nulls(length, value.type)
    return pa.repeat(value, length)


class Expression:
    """A parsed predicate. :meth:`evaluate` gives one (nullable) boolean per row of a batch."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tree = parse(text)
        names: dict[str, None] = {}
        self._collect(self.tree, names)
        self.columns = list(names)

    def _collect(self, node: Node, names: dict[str, None]) -> None:
        if isinstance(node, Column):
            names.setdefault(node.name)
        elif isinstance(node, Unary):
            self._collect(node.operand, names)
        elif isinstance(node, Binary):
            self._collect(node.left, names)
            self._collect(node.right, names)
        elif isinstance(node, InList | IsNull):
            self._collect(node.operand, names)
        elif isinstance(node, Call):
            for arg in node.args:
                self._collect(arg, names)

    def evaluate(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """The predicate over ``batch``: True, False, or null (unknown) per row."""
        result = _broadcast(self._eval(self.tree, batch), batch.num_rows)
        if pa.types.is_null(result.type):
            return pa.nulls(batch.num_rows, pa.bool_())
        if not pa.types.is_boolean(result.type):
            raise ExpressionTypeError(f"the expression gives {result.type} values, not true/false")
        return result

    # -- evaluation
    def _fail(self, node: Node, message: str) -> ExpressionTypeError:
        return ExpressionTypeError(f"{message} (at column {node.pos + 1})")

    def _eval(self, node: Node, batch: pa.RecordBatch) -> Value:
        if isinstance(node, Column):
            if node.name not in batch.schema.names:
                raise self._fail(node, f"unknown column {node.name!r}")
            return plain(batch.column(node.name))
        if isinstance(node, Literal):
            return _natural(node.value)
        if isinstance(node, Unary):
            operand = self._eval(node.operand, batch)
            if node.op == "not":
                self._require_bool(node.operand, operand, "'not'")
                return pc.invert(_null_bool(operand))
            return self._call(node, "'-'", "negate_checked", operand)
        if isinstance(node, IsNull):
            operand = self._eval(node.operand, batch)
            if isinstance(operand, pa.Scalar):
                return pa.scalar(operand.is_valid if node.negated else not operand.is_valid)
            return pc.is_valid(operand) if node.negated else pc.is_null(operand)
        if isinstance(node, InList):
            return self._in(node, batch)
        if isinstance(node, Call):
            return self._function(node, batch)
        assert isinstance(node, Binary)
        label = repr(node.op)
        if node.op in ("and", "or"):
            left = self._eval(node.left, batch)
            right = self._eval(node.right, batch)
            self._require_bool(node.left, left, label)
            self._require_bool(node.right, right, label)
            function = "and_kleene" if node.op == "and" else "or_kleene"
            return self._call(node, label, function, _null_bool(left), _null_bool(right))
        left, right = self._operands(node.left, node.right, batch)
        if node.op in _COMPARISONS:
            return self._call(node, label, _COMPARISONS[node.op], left, right)
        if node.op == "/":
            if pa.types.is_integer(left.type) and pa.types.is_integer(right.type):
                left, right = left.cast(pa.float64()), right.cast(pa.float64())
            if _is_numeric(right.type):  # x / 0 is NULL
                zero = pc.equal(right, to_scalar(0, right.type))
                right = pc.if_else(zero, pa.scalar(None, right.type), right)
        return self._call(node, label, _ARITHMETIC[node.op], left, right)

    def _require_bool(self, node: Node, value: Value, what: str) -> None:
        if not (pa.types.is_boolean(value.type) or pa.types.is_null(value.type)):
            raise self._fail(node, f"{what} needs a true/false condition, got {value.type} values")

    def _operands(self, left_node: Node, right_node: Node, batch: pa.RecordBatch) -> tuple[Value, Value]:
        """Both sides evaluated; a literal next to a column takes the column's type where it can."""
        left = self._eval(left_node, batch)
        right = self._eval(right_node, batch)
        if isinstance(right_node, Literal) and not isinstance(left_node, Literal):
            right = _adopt(right_node.value, left.type, right)
        elif isinstance(left_node, Literal) and not isinstance(right_node, Literal):
            left = _adopt(left_node.value, right.type, left)
        return left, right

    def _call(self, node: Node, label: str, function: str, *args: Value) -> Value:
        try:
            result: Value = pc.call_function(function, list(args))
        except pa.ArrowNotImplementedError:
            types = " and ".join(str(a.type) for a in args)
            raise self._fail(node, f"{label} does not apply to {types}") from None
        except pa.ArrowInvalid as exc:
            if "overflow" in str(exc).lower():
                raise ExpressionDataError(
                    f"arithmetic overflow in {label} at column {node.pos + 1}"
                ) from None
            raise self._fail(node, f"{label}: {exc}") from None
        return result

    def _in(self, node: InList, batch: pa.RecordBatch) -> Value:
        operand = self._eval(node.operand, batch)
        typ = operand.type
        if pa.types.is_null(typ):
            return pa.scalar(None, pa.bool_())
        values: list[Any] = []
        has_null = False
        for literal in node.values:
            if literal.value is None:
                has_null = True
                continue
            try:
                values.append(_literal_as(literal.value, typ).as_py())
            except ValueError as exc:
                raise self._fail(
                    literal, f"{literal.value!r} cannot be compared with {typ} values: {exc}"
                ) from None
        array = _broadcast(operand, batch.num_rows)
        found = pc.is_in(array, value_set=pa.array(values, typ))
        unknown = pa.scalar(None, pa.bool_())
        if has_null:  # x in (1, null) is true or unknown, never false (SQL)
            found = pc.if_else(found, True, unknown)
        found = pc.if_else(pc.is_null(array), unknown, found)
        return pc.invert(found) if node.negated else found

    def _function(self, node: Call, batch: pa.RecordBatch) -> Value:
        label = f"{node.name}()"
        if node.name == "coalesce":
            args = [self._eval(arg, batch) for arg in node.args]
            typed = next((a.type for a in args if not pa.types.is_null(a.type)), None)
            if typed is not None:
                args = [
                    _adopt(arg_node.value, typed, arg) if isinstance(arg_node, Literal) else arg
                    for arg_node, arg in zip(node.args, args, strict=True)
                ]
            return self._call(node, label, "coalesce", *args)
        arg = self._eval(node.args[0], batch)
        typ = arg.type
        if node.name == "length":
            if _is_text(typ):
                return self._call(node, label, "utf8_length", arg)
            if pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_fixed_size_binary(typ):
                return self._call(node, label, "binary_length", arg)
            raise self._fail(node, f"length() needs a string, got {typ} values")
        if node.name in ("lower", "upper"):
            if not _is_text(typ):
                raise self._fail(node, f"{label} needs a string, got {typ} values")
            return self._call(node, label, f"utf8_{node.name}", arg)
        if not _is_numeric(typ):
            raise self._fail(node, f"abs() needs a number, got {typ} values")
        return self._call(node, label, "abs_checked", arg)


def _is_text(typ: pa.DataType) -> bool:
    return bool(pa.types.is_string(typ) or pa.types.is_large_string(typ))


def _literal_as(value: Any, typ: pa.DataType) -> pa.Scalar:
    """A literal as a scalar of a column's type. A quoted string is never a number, nor a number a string."""
    if isinstance(value, str) and not (pa.types.is_temporal(typ) or _is_text(typ)):
        raise ValueError("a quoted string is not a number")
    if _is_text(typ) and not isinstance(value, str):
        raise ValueError("only a quoted string compares with text")
    return to_scalar(value, typ, finer_ok=True)


def _adopt(value: Any, typ: pa.DataType, natural: pa.Scalar) -> pa.Scalar:
    """The literal in the type of the value it meets, or its own type (then Arrow decides)."""
    if pa.types.is_null(typ):
        return natural
    try:
        return _literal_as(value, typ)
    except ValueError:
        return natural


def _null_bool(value: Value) -> Value:
    return value.cast(pa.bool_()) if pa.types.is_null(value.type) else value
