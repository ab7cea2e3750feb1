"""`make demo`: run the main job once on the embedded default and say where everything is.

Runs the `oversight_refresh` job through `execute_job` against the persistent instance in
`DAGSTER_HOME`, so the run appears in the UI afterwards exactly like a scheduled one.
"""

from __future__ import annotations

import sys

import dagster as dg
import duckdb

from ingest.settings import load_settings
from orchestration.instance import ensure_dagster_home

JOB_NAME = "oversight_refresh"


def refresh_job() -> dg.JobDefinition:
    from orchestration.definitions import defs

    return defs().resolve_job_def(JOB_NAME)


def _table_counts(warehouse_path) -> list[tuple[str, int]]:
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name, estimated_size from duckdb_tables() "
            "order by schema_name, table_name"
        ).fetchall()
    return [(f"{schema}.{table}", rows) for schema, table, rows in tables]


def main() -> int:
    home = ensure_dagster_home()
    settings = load_settings()
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance)
        run_id = result.run_id
        if not result.success:
            failed = [
                event.step_key
                for event in result.all_events
                if event.event_type == dg.DagsterEventType.STEP_FAILURE
            ]
            print(f"Refresh run {run_id} FAILED at step(s): {', '.join(failed) or 'unknown'}.")
            print("Open the run in the UI (`make dev`) for the step logs.")
            return 1
    print(f"Refresh run {run_id} succeeded.")
    print(f"  warehouse     : {settings.warehouse_path}")
    for name, rows in _table_counts(settings.warehouse_path):
        print(f"    {name:<40} {rows:>10,} rows")
    print(f"  BI publish dir: {settings.publish_dir}")
    print(f"  delivery data : {settings.data_dir}")
    print(f"  Dagster home  : {home}  (run history; `make dev` shows this run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
