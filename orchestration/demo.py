"""`make demo`: run the main job once on the embedded default and say where everything is.

On the first run it generates the synthetic demo portfolio (4 SMOs in four export dialects, 8
weekly deliveries each, their profiles and registry fixtures) into `SMO_DATA_DIR`. It then runs
the `oversight_refresh` job against the persistent instance in `DAGSTER_HOME`, created with the
code location's origin (`orchestration.lib.launch`), so the run appears in the UI under its job
exactly like a scheduled one. A second `make demo` finds no new deliveries; `make clean` starts
over.

The terminal gets one line per step (name, outcome, seconds) and a short summary ending with the
report's address; Dagster's full log and dbt's per-model lines go to a log file in
`DAGSTER_HOME/demo-logs/` (its path is printed), or to the terminal with `--verbose`. dbt colours
its lines only when they go to a terminal. The summary reads the published file (what the report
shows: needs attention, red SMOs) and the warehouse's read-only copy made at the end of the run
(the ledger), never the live file: another refresh may be writing it (two `make demo` at once
are serialised by the writer pool, not by this process).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import dagster as dg
import duckdb

from core.settings import load_settings
from orchestration.instance import ensure_dagster_home, open_instance
from orchestration.lib.launch import create_run, execute, new_run_id
from publishing import report_data, report_html
from publishing.report import REPORT_NAME

JOB_NAME = "oversight_refresh"
#: How Dagster prefixes the description of a step's `dg.Failure`: noise for the demo's reader.
FAILURE_PREFIX = "dagster._core.definitions.events.Failure: "
#: Demo logs kept in DAGSTER_HOME/demo-logs (the newest; one per run, ~1 MB at demo scale).
LOGS_KEPT = 10
#: Needs-attention items printed; the rest are counted (the report lists them all).
ATTENTION_SHOWN = 8
STEP_OUTCOMES = {
    dg.DagsterEventType.STEP_SUCCESS: "ok",
    dg.DagsterEventType.STEP_FAILURE: "FAILED",
    dg.DagsterEventType.STEP_SKIPPED: "skipped",
}


def refresh_job() -> dg.JobDefinition:
    """The job as a Python object, for tests and benchmarks that execute it directly."""
    from orchestration.definitions import defs

    return defs().resolve_job_def(JOB_NAME)


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


def _delivery_lines(warehouse_path, run_id: str) -> list[str]:
    """What this run loaded and rejected at the delivery gate, and what is current now."""
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        (loaded, loaded_rows, rejected) = con.execute(
            """
            select count(*) filter (where status <> 'REJECTED'),
                   coalesce(sum(row_count) filter (where status <> 'REJECTED'), 0),
                   count(*) filter (where status = 'REJECTED')
            from ops.deliveries where delivery_id in
                (select delivery_id from ops.gate_results where run_id = ? and gate = 'delivery')
            """,
            [run_id],
        ).fetchall()[0]
        (current, current_rows) = con.execute(
            "select count(*), coalesce(sum(row_count), 0) from ops.deliveries "
            "where status = 'ACCEPTED'"
        ).fetchall()[0]
    return [
        f"  deliveries: {loaded} loaded ({loaded_rows:,} rows) and {rejected} rejected by this "
        f"run; {current} current in the warehouse ({current_rows:,} rows)"
    ]


def _oversight_summary(published) -> list[str]:
    """What an oversight lead acts on first, from the published file (what the report shows):
    red SMOs and red sites of the latest week, and the needs-attention items."""
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
    lines = [f"Oversight as of {as_of} (the published marts, as the report shows them):"]
    lines.append(f"  red SMOs: {len(smos)}")
    lines += [
        f"    - {smo}: red on "
        + ", ".join(labels[k].label if k in labels else k for k in (kpis or []))
        for smo, kpis in smos
    ]
    lines.append(
        f"  sites with a red flag: {red_sites} ({attention.persisting_red_flags} red flags "
        "persisting from earlier weeks)"
    )
    items = report_html.attention_items(attention)
    kinds = Counter(kind for kind, _ in items)
    lines.append(
        f"  needs attention: {len(items)}"
        + (f" ({', '.join(f'{n} {kind}' for kind, n in kinds.items())})" if items else "")
    )
    lines += [f"    - {line}" for _, line in items[:ATTENTION_SHOWN]]
    if len(items) > ATTENTION_SHOWN:
        lines.append(f"    ... and {len(items) - ATTENTION_SHOWN} more in the report")
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
        f"    {'PULLED after loading' if pulled else 'REJECTED'}: {smo}/{name} ({rules}); "
        f"report: {report}"
        for smo, name, rules, pulled, report in rows
    ]


def _first_line(text: str | None, limit: int = 300) -> str:
    return next((line for line in (text or "").splitlines() if line.strip()), "")[:limit]


def _failure_lines(run_id: str, events: list[dg.DagsterEvent]) -> list[str]:
    """What failed, in a few human lines: the failed steps with their own message (not a
    traceback) and the blocking checks that did not pass."""
    lines = [f"Refresh run {run_id} FAILED."]
    for event in events:
        if event.event_type != dg.DagsterEventType.STEP_FAILURE:
            continue
        error = getattr(event.step_failure_data, "error", None)
        while error is not None and error.cause is not None and not error.message.strip():
            error = error.cause
        message = (error.message if error else "").strip().removeprefix(FAILURE_PREFIX)
        message = message.splitlines()
        lines.append(f"  step {event.step_key} failed: {message[0][:300] if message else ''}")
        lines += [f"    {line[:300]}" for line in message[1:11]]
    for event in events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        check = event.asset_check_evaluation_data
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            why = _first_line(check.description) or "see its metadata in the UI"
            lines.append(
                f"  blocking check {check.check_name} on {check.asset_key.to_user_string()}: {why}"
            )
    lines.append("The last good publish stays in place. Open the run in the UI (`make dev`).")
    return lines


def _step_line(event: dg.DagsterEvent, started: dict[str, float]) -> str | None:
    """One line when a step ends: its name, outcome and seconds."""
    if event.event_type == dg.DagsterEventType.STEP_START:
        started[event.step_key] = time.monotonic()
        return None
    outcome = STEP_OUTCOMES.get(event.event_type)
    if outcome is None:
        return None
    start = started.pop(event.step_key, None)
    seconds = f"{time.monotonic() - start:7.1f} s" if start is not None else ""
    return f"  {event.step_key:<48} {outcome:<7} {seconds}".rstrip()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by a demo running at the same time
        return 0.0


def _demo_log(home: Path, run_id: str) -> Path:
    """This run's log file, older ones beyond LOGS_KEPT removed."""
    folder = home / "demo-logs"
    folder.mkdir(exist_ok=True)
    # Named by run id (UUID4, unordered): the oldest by mtime go; two demos at once may race.
    logs = sorted(folder.glob("*.log"), key=_mtime)
    for old in logs[: max(0, len(logs) - LOGS_KEPT + 1)]:
        old.unlink(missing_ok=True)
    return folder / f"{run_id}.log"


@contextmanager
def _output_to(log: Path | None) -> Iterator[None]:
    """Everything the run prints (Dagster's console log, dbt's lines echoed by dagster-dbt,
    warnings) into `log`; `None` leaves it on the terminal."""
    if log is None:
        yield
        return
    with open(log, "w", encoding="utf-8") as file, redirect_stdout(file), redirect_stderr(file):
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print Dagster's full log and dbt's per-model lines here instead of a log file",
    )
    args = parser.parse_args(argv or [])
    try:
        return _run(verbose=args.verbose)
    except Exception as exc:  # noqa: BLE001 - the demo's user gets a sentence, not a traceback
        print(f"make demo failed: {type(exc).__name__}: {_first_line(str(exc))}", file=sys.stderr)
        return 1


def _run(verbose: bool) -> int:
    home = ensure_dagster_home()
    settings = load_settings()
    _seed_demo_data(settings)
    terminal = sys.stdout
    if not (verbose and terminal.isatty()):
        os.environ.setdefault("DBT_USE_COLORS", "false")  # no escape codes in a file or a pipe
    run_id = new_run_id()
    global _RUN_LOG
    log = _RUN_LOG = None if verbose else _demo_log(home, run_id)
    where = "below" if log is None else f"in {log}"
    print(f"Running {JOB_NAME} as run {run_id} (full Dagster and dbt log {where}):", flush=True)
    started_at = time.monotonic()
    events: list[dg.DagsterEvent] = []
    with open_instance() as instance:
        with _output_to(log):
            job, run = create_run(
                instance,
                JOB_NAME,
                run_id=run_id,
                run_config={"loggers": {"console": {"config": {"log_level": "DEBUG"}}}},
            )
            started: dict[str, float] = {}
            skipped = 0
            for event in execute(job, run, instance):
                events.append(event)
                if event.event_type == dg.DagsterEventType.STEP_SKIPPED:
                    skipped += 1  # a quiet week skips the gate and publish: one line for all
                elif line := _step_line(event, started):
                    print(line, file=terminal, flush=True)
            if skipped:
                print(
                    f"  {skipped} later steps skipped: nothing they read changed (their checks "
                    "keep their last results, re-reported in this run)",
                    file=terminal,
                    flush=True,
                )
        status = instance.get_run_by_id(run_id).status
    pulled = _this_runs_rejections(settings.warehouse_snapshot_path, run_id)
    if status != dg.DagsterRunStatus.SUCCESS:
        print("\n".join(_failure_lines(run_id, events) + pulled))
        if log is not None:
            print(f"Full log: {log}")
        return 1
    print(f"Refresh run {run_id} succeeded in {time.monotonic() - started_at:.0f} s.")
    snapshot = settings.warehouse_snapshot_path
    print("\n".join(_delivery_lines(snapshot, run_id) + pulled))
    published = settings.publish_dir / "oversight.duckdb"
    report = settings.publish_dir / REPORT_NAME
    if not published.exists():
        print("  BI database: not published (a gate failed; see the run in `make dev`)")
        return 0
    print("\n".join(_oversight_summary(published)))
    with duckdb.connect(str(published), read_only=True) as con:
        publish_id, as_of = con.execute("select publish_id, as_of_date from meta").fetchall()[0]
    print(f"  BI database: {published} (publish {publish_id}, as of {as_of}; read-only)")
    print(f"  BI Parquet: {settings.publish_dir / 'parquet' / 'current'}/<mart>.parquet")
    print(f"  query copy of the warehouse: {snapshot}; rejected files: {settings.quarantine_dir}")
    print(f"  Dagster: {home} (`make dev`: this run is under the job {JOB_NAME})")
    if report.exists():
        print(f"Report: {report.resolve().as_uri()}")
    return 0


#: The run's log file once `_run` chose it (None: verbose, or no run started).
_RUN_LOG: Path | None = None


def _teardown_output_to_log() -> None:
    """Send what the interpreter prints while it shuts down to the run's log: with duckdb 2.x
    that is ~100 "nanobind: leaked ..." lines (objects duckdb's bindings still hold at exit),
    which would otherwise follow, and bury, the summary's last line (the report address)."""
    if _RUN_LOG is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    with open(_RUN_LOG, "a", encoding="utf-8") as handle:
        os.dup2(handle.fileno(), 2)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    _teardown_output_to_log()
    sys.exit(code)
