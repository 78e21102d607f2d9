"""``conduit init``: a small working project (a flow directory, a dev profile, sample CSVs)."""

from __future__ import annotations

from pathlib import Path

from conduit.errors import ConfigError

FILES: dict[str, str] = {
    "profiles/dev.yml": """\
# Connections and variables for the dev environment. Copy to prod.yml and change what differs;
# choose with --env prod or CONDUIT_ENV=prod. Secrets come from the environment: "${PG_PASSWORD}".
version: 1
variables:
  out_dir: out
connections:
  shop_files: {type: csv, params: {encoding: utf-8}}
  lake: {type: parquet, params: {compression: zstd}}
""",
    "flows/shop/flow.yml": """\
# Every entity of this flow reads from shop_files and writes to lake (see profiles/dev.yml).
version: 1
source: {connection: shop_files}
destination: {connection: lake}
defaults:
  source:
    options: {path: "data/${entity.name}.csv"}        # relative paths: from the project root
  destination:
    options: {path: "${var.out_dir}/${entity.name}.parquet"}
""",
    "flows/shop/entities.yml": """\
defaults:
  mode: replace
entities:
  - customers                                          # a bare name takes every default
  - name: orders
    source:
      options:
        columns: {amount: "decimal(10,2)", ordered_at: timestamptz}
    checks:
      - not_null: {columns: [order_id, customer_id]}
""",
    "data/customers.csv": """\
customer_id,name,country,signed_up
1,Ada Lovelace,GB,2024-01-05
2,Grace Hopper,US,2024-02-11
3,Hedwig Kiesler,AT,2024-03-20
4,Nujoma Sam,NA,2024-04-02
""",
    "data/orders.csv": """\
order_id,customer_id,amount,ordered_at,note
100,1,19.99,2024-05-01T09:30:00+01:00,first order
101,2,5.00,2024-05-02T12:00:00Z,"gift, wrapped"
102,4,120.50,2024-05-03T18:45:00-05:00,
""",
    ".gitignore": "out/\n.conduit/\n.env\n",
}


def scaffold(directory: Path) -> list[Path]:
    """Write the starter project; refuse to overwrite any existing file."""
    targets = [directory / relative for relative in FILES]
    existing = [str(path) for path in targets if path.exists()]
    if existing:
        raise ConfigError(f"{directory}: not overwriting existing files: {', '.join(existing)}")
    for relative, text in FILES.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return targets
