"""Generate a deterministic "orders" CSV for the Conduit benchmarks.

    python bench/generate.py --rows 1000000 --out bench/data/orders_1m.csv

The file looks like an export of a real orders table: 15 mixed-type columns, ISO-8601 timestamps with
varying UTC offsets, decimal amounts as text, booleans, dates, a country column where "NA" (Namibia)
is a real value and must not become null, a quoted free-text column with commas, doubled double
quotes and non-ASCII text, and a coupon column that is empty in about 30% of rows.

Rows are produced in chunks of ``CHUNK_ROWS``: numpy draws the random values (one generator per
chunk, seeded from ``(seed, chunk index)``) and pyarrow compute formats and joins them into CSV lines,
so there is no per-row Python code and only one chunk is in memory at a time. The same ``--seed`` and
``--rows`` give a byte-identical file (for the same numpy version), and a file whose row count is a
multiple of ``CHUNK_ROWS`` is a prefix of every larger one. The file is written next to its final
path and renamed into place, so an interrupted run never leaves a truncated CSV behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_SEED = 20240301
CHUNK_ROWS = 100_000

COLUMNS: tuple[str, ...] = (
    "order_id",
    "customer_id",
    "email",
    "country",
    "currency",
    "sku",
    "quantity",
    "amount",
    "discount",
    "is_gift",
    "status",
    "created_at",
    "ship_date",
    "note",
    "coupon",
)

# (country code, currency, UTC offsets in minutes seen for orders from that country, weight).
# "NA" is Namibia: a reader that treats "NA" as null loses these rows' country.
COUNTRIES: tuple[tuple[str, str, tuple[int, ...], float], ...] = (
    ("US", "USD", (-300, -360, -420, -480), 0.30),
    ("GB", "GBP", (0, 60), 0.10),
    ("DE", "EUR", (60, 120), 0.10),
    ("FR", "EUR", (60, 120), 0.07),
    ("NL", "EUR", (60, 120), 0.05),
    ("ES", "EUR", (60, 120), 0.04),
    ("CA", "CAD", (-240, -300, -420, -480), 0.05),
    ("BR", "BRL", (-180,), 0.04),
    ("IN", "INR", (330,), 0.05),
    ("NP", "NPR", (345,), 0.01),
    ("JP", "JPY", (540,), 0.05),
    ("AU", "AUD", (480, 570, 600, 660), 0.04),
    ("NZ", "NZD", (720, 780), 0.01),
    ("ZA", "ZAR", (120,), 0.03),
    ("NA", "NAD", (120,), 0.03),
    ("SE", "SEK", (60, 120), 0.03),
)

STATUSES: tuple[tuple[str, float], ...] = (
    ("pending", 0.06),
    ("paid", 0.14),
    ("shipped", 0.22),
    ("delivered", 0.50),
    ("cancelled", 0.05),
    ("refunded", 0.03),
)

FIRST_NAMES: tuple[str, ...] = (
    "ada", "alan", "amara", "ana", "bruno", "chen", "chloe", "daniel", "elif", "emma",
    "farah", "grace", "hana", "hugo", "ines", "ivan", "jonas", "kofi", "lars", "lea",
    "liam", "lucia", "maya", "mei", "noah", "olga", "omar", "priya", "raj", "sara",
    "sofia", "tariq", "yuki", "zoe",
)  # fmt: skip
LAST_NAMES: tuple[str, ...] = (
    "adeyemi", "bauer", "costa", "dubois", "eriksson", "fischer", "garcia", "hansen",
    "ito", "jansen", "kim", "kowalski", "martin", "mensah", "muller", "nakamura",
    "novak", "okafor", "petrov", "rossi", "santos", "schmidt", "silva", "smith",
    "tanaka", "van_dijk", "wang", "weber", "williams", "zhang",
)  # fmt: skip
DOMAINS: tuple[str, ...] = (
    "example.com", "mail.example.org", "shop-customers.net", "inbox.example.co.uk",
    "post.example.de", "example.com.br", "correo.example.es",
)  # fmt: skip

# Free text as customers type it; quoted below exactly as a CSV writer with minimal quoting would.
NOTES: tuple[str, ...] = (
    'Leave at door, ring "twice"',
    "Please deliver after 6pm, not before",
    'Gift wrap, card says "Happy birthday, Sam!"',
    "No note",
    'Call on arrival: "+1 555 0100", ext. 12',
    'Fragile, "this side up"',
    "Back entrance, gate code 4411",
    "Café entrance, 2nd floor",
    "Deliver to 東京 office, floor 3",
    'Après 18h, sonner "deux fois"',
    'Size "M", not "L", thanks',
    "Leave with neighbour at no. 12",
    "He said \"don't bend\", so please don't",
    "Ship together with order, if possible",
)

COUPONS: tuple[str, ...] = (
    "WELCOME10", "SPRING24", "FREESHIP", "VIP20", "BLACKFRIDAY", "LOYALTY5", "SUMMER15", "APP-ONLY",
)  # fmt: skip
COUPON_FILLED_FRACTION = 0.70

# Order times: order i is placed about ORDER_SPACING_S seconds after order i-1, with jitter.
FIRST_ORDER_UTC = int(np.datetime64("2023-01-01T00:00:00", "s").astype(np.int64))
ORDER_SPACING_S = 12
ORDER_JITTER_S = 600


def csv_field(text: str) -> str:
    """Quote a field only when it needs it (comma, quote or line break), doubling inner quotes."""
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def offset_text(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def header_line() -> bytes:
    return (",".join(COLUMNS) + "\n").encode("utf-8")


def _strings(values: tuple[str, ...]) -> pa.Array:
    return pa.array(values, type=pa.string())


def _pick(pool: pa.Array, indices: np.ndarray) -> pa.Array:
    return pool.take(pa.array(indices))


def _to_text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


class OrdersChunkMaker:
    """Builds the CSV text for one chunk of rows; holds the lookup tables shared by all chunks."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.country_codes = _strings(tuple(c[0] for c in COUNTRIES))
        self.country_currency = _strings(tuple(c[1] for c in COUNTRIES))
        weights = np.array([c[3] for c in COUNTRIES])
        self.country_p = weights / weights.sum()
        # UTC offsets as a [country, slot] table of indices into the distinct offsets; a country
        # with fewer time zones than slots repeats its zones.
        distinct = sorted({m for c in COUNTRIES for m in c[2]})
        self.offset_minutes = np.array(distinct, dtype=np.int64)
        self.offset_texts = _strings(tuple(offset_text(m) for m in distinct))
        self.offset_slots = max(len(c[2]) for c in COUNTRIES)
        self.offset_ids = np.array(
            [[distinct.index(c[2][i % len(c[2])]) for i in range(self.offset_slots)] for c in COUNTRIES],
            dtype=np.int64,
        )
        self.statuses = _strings(tuple(s[0] for s in STATUSES))
        status_w = np.array([s[1] for s in STATUSES])
        self.status_p = status_w / status_w.sum()
        self.first_names = _strings(FIRST_NAMES)
        self.last_names = _strings(LAST_NAMES)
        self.domains = _strings(DOMAINS)
        self.notes = _strings(tuple(csv_field(n) for n in NOTES))
        self.coupons = _strings(("", *COUPONS))
        self.booleans = _strings(("false", "true"))

    def chunk(self, chunk_index: int, first_order_id: int, rows: int) -> pa.Buffer:
        """CSV lines (with trailing newlines) for ``rows`` orders starting at ``first_order_id``."""
        rng = np.random.default_rng([self.seed, chunk_index])
        order_id = np.arange(first_order_id, first_order_id + rows, dtype=np.int64)

        # Customers: skewed towards low ids so that some customers order many times.
        customer_id = 10_000_000 + (250_000 * rng.random(rows) ** 2).astype(np.int64)
        email = _join(
            _pick(self.first_names, customer_id % len(FIRST_NAMES)),
            ".",
            _pick(self.last_names, (customer_id // len(FIRST_NAMES)) % len(LAST_NAMES)),
            _to_text(customer_id % 1000),
            "@",
            _pick(self.domains, (customer_id // 7) % len(DOMAINS)),
        )

        country = rng.choice(len(COUNTRIES), size=rows, p=self.country_p)
        sku = _join("SKU-", pc.utf8_lpad(_to_text(rng.integers(1, 40_000, rows)), width=6, padding="0"))
        quantity = np.minimum(rng.geometric(0.55, rows), 50)

        # Order totals in cents: a log-normal unit price (median about 36.60) times the quantity.
        cents = np.maximum(np.rint(rng.lognormal(3.6, 0.9, rows) * 100 * quantity), 50).astype(np.int64)
        amount = _join(_to_text(cents // 100), ".", pc.utf8_lpad(_to_text(cents % 100), width=2, padding="0"))

        # 60% of orders have no discount ("0.0"); the rest between 0.01 and 0.35.
        discount_bp = np.where(rng.random(rows) < 0.6, 0, rng.integers(100, 3501, rows))
        discount = pc.if_else(
            pa.array(discount_bp == 0), "0.0", _to_text(discount_bp.astype(np.float64) / 10_000)
        )

        is_gift = _pick(self.booleans, (rng.random(rows) < 0.07).astype(np.int64))
        status = _pick(self.statuses, rng.choice(len(STATUSES), size=rows, p=self.status_p))

        # Local wall-clock time with the UTC offset of the customer's time zone.
        created_utc = (
            FIRST_ORDER_UTC
            + order_id * ORDER_SPACING_S
            + rng.integers(-ORDER_JITTER_S, ORDER_JITTER_S + 1, rows)
        )
        offset_id = self.offset_ids[country, rng.integers(0, self.offset_slots, rows)]
        created_local = created_utc + self.offset_minutes[offset_id] * 60
        created_at = _join(
            pc.strftime(pa.array(created_local, type=pa.timestamp("s")), format="%Y-%m-%dT%H:%M:%S"),
            _pick(self.offset_texts, offset_id),
        )
        ship_day = created_local // 86_400 + rng.integers(1, 8, rows)
        ship_date = pc.cast(pa.array(ship_day.astype(np.int32), type=pa.date32()), pa.string())

        note = _pick(self.notes, rng.integers(0, len(NOTES), rows))
        has_coupon = rng.random(rows) < COUPON_FILLED_FRACTION
        coupon = _pick(self.coupons, np.where(has_coupon, rng.integers(1, len(COUPONS) + 1, rows), 0))

        line = _join(
            _to_text(order_id),
            _to_text(customer_id),
            email,
            _pick(self.country_codes, country),
            _pick(self.country_currency, country),
            sku,
            _to_text(quantity),
            amount,
            discount,
            is_gift,
            status,
            created_at,
            ship_date,
            note,
            coupon,
            sep=",",
        )
        lines = _join(line, "\n")
        return _concatenated_values(lines)


def _concatenated_values(array: pa.Array) -> pa.Buffer:
    """All values of a null-free string array back to back: a zero-copy slice of its data buffer."""
    _, offsets_buffer, data = array.buffers()
    if array.null_count or offsets_buffer is None or data is None:
        raise ValueError("expected a non-empty string array without nulls")
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    start, end = int(offsets[0]), int(offsets[-1])
    return data.slice(start, end - start)


def generate(rows: int, out: Path, seed: int = DEFAULT_SEED) -> int:
    """Write ``rows`` orders to ``out`` (atomically); return the file size in bytes."""
    if rows < 0:
        raise ValueError("rows must be >= 0")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    maker = OrdersChunkMaker(seed)
    try:
        with partial.open("wb") as f:
            f.write(header_line())
            for chunk_index, start in enumerate(range(0, rows, CHUNK_ROWS)):
                f.write(maker.chunk(chunk_index, start + 1, min(CHUNK_ROWS, rows - start)))
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out.stat().st_size


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True, help="number of data rows (header excluded)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    size = generate(args.rows, args.out, args.seed)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {args.rows:,} rows to {args.out} ({size:,} bytes, {size / 2**20:.1f} MiB) in {elapsed:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
