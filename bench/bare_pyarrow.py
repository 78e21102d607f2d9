"""The raw-tool baseline: CSV to Parquet with nothing but pyarrow, as a competent engineer writes it.

    python bench/bare_pyarrow.py bench/data/orders_1m.csv bench/out/bare_orders_1m.parquet

Streams the CSV with ``pyarrow.csv.open_csv`` (default options: types inferred from the first block)
and writes each record batch with one ``pyarrow.parquet.ParquetWriter`` (default options: snappy).
No validation, no schema policy, no atomic commit: this is the floor Conduit is measured against.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq


def convert(csv_path: Path, parquet_path: Path) -> int:
    """Write ``csv_path`` as one Parquet file at ``parquet_path``; return the number of rows."""
    rows = 0
    reader = pacsv.open_csv(csv_path)
    with pq.ParquetWriter(parquet_path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python bench/bare_pyarrow.py INPUT.csv OUTPUT.parquet", file=sys.stderr)
        return 2
    csv_path, parquet_path = Path(argv[0]), Path(argv[1])
    rows = convert(csv_path, parquet_path)
    print(f"wrote {rows:,} rows to {parquet_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
