"""`make demo`: run the main job once on the embedded default and say where everything is.

On the first run it generates the synthetic demo portfolio (4 SMOs in four export dialects, 8
weekly deliveries each, their profiles and registry fixtures) into `SMO_DATA_DIR`. It then runs
the `oversight_refresh` job through `execute_job` against the persistent instance in
`DAGSTER_HOME`, so the run appears in the UI afterwards exactly like a scheduled one. A second
`make demo` finds no new deliveries; `make clean` starts over. The summary reads the published
file (what the report shows: needs attention, red SMOs) and the warehouse's read-only copy made
at the end of the run (table counts, the ledger), never the live file: another refresh may be
writing it (two `make demo` at once are serialised by the writer pool, not by this process).
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import dagster as dg
import duckdb

from core.settings import load_settings
from orchestration.instance import ensure_dagster_home, open_instance
from publishing import report_data, report_html
from publishing.report import REPORT_NAME

JOB_NAME = "oversight_refresh"
#: How Dagster prefixes the description of a step's `dg.Failure`: noise for the demo's reader.
FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "


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


def _seed_demo_data(settings) -> None:
    if settings.profiles_dir.exists():
        print(f"Demo data already in {settings.data_dir} (make clean to regenerate).")
        return
    from synthetic.generate import generate

    today = dt.date.today()
    last_monday = today - dt.timedelta(days=today.weekday())
    truth = generate(settings.data_dir, scale="demo", weeks=8, seed=7, end=last_monday)
    print(
        f"Generated the demo portfolio into {settings.data_dir}: {len(truth['smos'])} SMOs, "
        f"{len(truth['studies'])} studies, weekly deliveries {truth['delivery_dates'][0]} .. "
        f"{truth['delivery_dates'][-1]}."
    )


def _ledger_summary(warehouse_path) -> list[tuple]:
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        return con.execute(
            "select status, count(*), sum(row_count) from ops.deliveries group by 1 order by 1"
        ).fetchall()


def _oversight_summary(published, report) -> list[str]:
    """What an oversight lead acts on first, from the published file (what the report shows):
    the needs-attention items, red SMOs and red sites of the latest week, and the report."""
    with duckdb.connect(str(published), read_only=True) as con:
        (as_of,) = con.execute("select as_of_date from meta").fetchall()[0]
        attention = report_data.needs_attention(con)
        labels = report_data.kpi_labels(con, "smo")
        smos = con.execute(
            """
            select smo_id, list(kpi_id order by kpi_id) filter (where rag = 'red')
            from smo_scorecard where as_of_date = (select max(as_of_date) from smo_scorecard)
            group by smo_id having any_value(overall_rag) = 'red' order by smo_id
            """
        ).fetchall()
        (red_sites,) = con.execute(
            "select count(*) from site_risk_scores where risk_level = 'red' "
            "and as_of_date = (select max(as_of_date) from site_risk_scores)"
        ).fetchall()[0]
    items = report_html.attention_items(attention)
    lines = [f"Oversight, as of {as_of} (the published marts, as the report shows them):"]
    lines.append(f"  needs attention: {len(items)}")
    lines += [f"    - {line}" for _, line in items]
    lines.append(f"  red SMOs: {len(smos)}")
    lines += [
        f"    - {smo}: red on "
        + ", ".join(labels[k].label if k in labels else k for k in (kpis or []))
        for smo, kpis in smos
    ]
    lines.append(
        f"  sites with a red flag: {red_sites} ({attention.persisting_red_flags} red flags "
        "persisting from earlier weeks; each with its value and comparator in the report)"
    )
    if report.exists():
        lines.append(f"  report: {report.resolve().as_uri()}")
    return lines


def _this_runs_rejections(warehouse_path, run_id: str) -> list[str]:
    """Deliveries rejected by this run (at the gate, or pulled after loading), one line each."""
    try:
        with duckdb.connect(str(warehouse_path), read_only=True) as con:
            rows = con.execute(
                """
                select d.smo_id, d.file_name, string_agg(distinct g.check_name, ', '),
                       bool_or(g.gate = 'warehouse'), any_value(d.report_path)
                from ops.gate_results g join ops.deliveries d using (delivery_id)
                where g.run_id = ? and not g.success and d.status = 'REJECTED'
                  and g.check_name <> 'contract'
                group by all order by all
                """,
                [run_id],
            ).fetchall()
    except duckdb.Error:
        return []
    return [
        f"  {'PULLED after loading' if pulled else 'REJECTED'}: {smo}/{name} ({rules}); "
        f"report: {report}"
        for smo, name, rules, pulled, report in rows
    ]


def _first_line(text: str | None, limit: int = 300) -> str:
    return next((line for line in (text or "").splitlines() if line.strip()), "")[:limit]


def _failure_lines(result: dg.ExecuteJobResult) -> list[str]:
    """What failed, in a few human lines: the failed steps with their own message (not a
    traceback) and the blocking checks that did not pass."""
    lines = [f"Refresh run {result.run_id} FAILED."]
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.STEP_FAILURE:
            continue
        error = getattr(event.step_failure_data, "error", None)
        while error is not None and error.cause is not None and not error.message.strip():
            error = error.cause
        message = (error.message if error else "").strip().removeprefix(FAILURE_PREFIX)
        message = message.splitlines()
        lines.append(f"  step {event.step_key} failed: {message[0][:300] if message else ''}")
        lines += [f"    {line[:300]}" for line in message[1:11]]
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            why = _first_line(check.description) or "see its metadata in the UI"
            lines.append(
                f"  blocking check {check.check_name} on {check.asset_key.to_user_string()}: {why}"
            )
    lines.append("The last good publish stays in place. Open the run in the UI (`make dev`).")
    return lines


def main() -> int:
    try:
        return _run()
    except Exception as exc:  # noqa: BLE001 - the demo's user gets a sentence, not a traceback
        print(f"make demo failed: {type(exc).__name__}: {_first_line(str(exc))}", file=sys.stderr)
        return 1


def _run() -> int:
    home = ensure_dagster_home()
    settings = load_settings()
    _seed_demo_data(settings)
    # Dagster's console log (every event, stack traces of failed steps) stays in the run's log
    # in the UI; the demo prints its own summary. SMO_DEMO_LOG_LEVEL=INFO shows it here too.
    level = (os.environ.get("SMO_DEMO_LOG_LEVEL") or "CRITICAL").upper()
    print(f"Running {JOB_NAME} (step logs: `make dev`, or SMO_DEMO_LOG_LEVEL=INFO) ...", flush=True)
    with open_instance() as instance:
        result = dg.execute_job(
            dg.reconstructable(refresh_job),
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": level}}}},
        )
        run_id = result.run_id
        pulled = _this_runs_rejections(settings.warehouse_snapshot_path, run_id)
        if not result.success:
            print("\n".join(_failure_lines(result) + pulled))
            return 1
    print(f"Refresh run {run_id} succeeded.")
    if pulled:
        print("\n".join(pulled))
    snapshot = settings.warehouse_snapshot_path
    print(f"  warehouse     : {settings.warehouse_path}  (the pipeline's; do not open it)")
    print(f"  query copy    : {snapshot}  (read-only copy of the warehouse after this run)")
    for name, rows in _table_counts(snapshot):
        print(f"    {name:<40} {rows:>10,} rows")
    print(
        "  deliveries    : "
        + ", ".join(
            f"{status} {n} ({rows:,} rows)" for status, n, rows in _ledger_summary(snapshot)
        )
    )
    print(f"  quarantine    : {settings.quarantine_dir}  (rejected files + reports)")
    published = settings.publish_dir / "oversight.duckdb"
    if published.exists():
        with duckdb.connect(str(published), read_only=True) as con:
            publish_id, as_of = con.execute("select publish_id, as_of_date from meta").fetchall()[0]
        print(f"  BI database   : {published}  (publish {publish_id}, as of {as_of}; read-only)")
        print(f"  BI Parquet    : {settings.publish_dir / 'parquet' / 'current'}/<mart>.parquet")
        report = settings.publish_dir / REPORT_NAME
        if report.exists():
            print(f"  report        : {report.resolve().as_uri()}  (open in a browser; offline)")
    else:
        print("  BI database   : not published (a gate failed; see the run in `make dev`)")
    print(f"  delivery data : {settings.data_dir}")
    print(f"  Dagster home  : {home}  (run history; `make dev` shows this run)")
    if published.exists():
        print("\n".join(_oversight_summary(published, settings.publish_dir / REPORT_NAME)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
