"""`ops.gate_results`: every gate's verdicts stored as data (spec 5: validated transfers are
oversight evidence).

This module owns the table: its DDL, its Arrow schema and the one writer. Each gate only builds
its rows (the delivery gate in `ingest.warehouse`, the warehouse gate in the dbt step, the
publish gate in `expectations.publish_gate`, Dagster check results in
`orchestration.lib.gate_evidence`).
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa

GATE_RESULTS_DDL = """
create table if not exists ops.gate_results (
    run_id          varchar,        -- Dagster run id; null outside Dagster (e.g. the CLI)
    gate            varchar not null, -- delivery | warehouse | publish
    target          varchar not null, -- the file, dbt node or mart checked
    check_name      varchar not null, -- rule id, dbt test or expectation
    success         boolean not null,
    observed_value  varchar,        -- e.g. failing rows, the observed value
    details         varchar,        -- JSON: column, examples, severity, error
    delivery_id     bigint,         -- delivery gate: the delivery checked
    evaluated_at    timestamp not null
);
"""

#: ops.gate_results as Arrow: rows are inserted in one statement from a table of this schema.
GATE_RESULT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("gate", pa.string()),
        ("target", pa.string()),
        ("check_name", pa.string()),
        ("success", pa.bool_()),
        ("observed_value", pa.string()),
        ("details", pa.string()),
        ("delivery_id", pa.int64()),
        ("evaluated_at", pa.timestamp("us")),
    ]
)


def ensure_gate_results(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(GATE_RESULTS_DDL)


def record_gate_results(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """Append gate outcomes.

    Each row: gate, target, check_name, success, and optionally run_id, observed_value, details
    (a dict, stored as JSON), delivery_id, evaluated_at (defaults to now, UTC).
    """
    if not rows:
        return
    # The table may predate this warehouse's ingest (a dbt-only run), so make sure it exists.
    ensure_gate_results(con)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    table = pa.Table.from_pylist(
        [
            {
                **row,
                "success": bool(row["success"]),
                "observed_value": None
                if row.get("observed_value") is None
                else str(row["observed_value"]),
                "details": None
                if row.get("details") is None
                else json.dumps(row["details"], default=str),
                "evaluated_at": row.get("evaluated_at") or now,
            }
            for row in rows
        ],
        schema=GATE_RESULT_SCHEMA,
    )
    con.register("_gate_rows", table)  # one insert: executemany pays a statement per row
    con.execute("insert into ops.gate_results by name select * from _gate_rows")
    con.unregister("_gate_rows")
