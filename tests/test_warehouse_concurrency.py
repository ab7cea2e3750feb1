"""Who else opens the warehouse while a refresh runs: a data engineer's read-only session (the
refresh waits for it, bounded) and a second refresh launched at the same time (the writer pool
serialises them). Real jobs on the small portfolio; readers and refreshes are real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from core.settings import PROJECT_ROOT, load_settings
from orchestration.demo import _failure_lines, refresh_job
from publishing.bi_database import META_TABLE
from tests.test_warehouse_lock import hold_read_only

pytestmark = pytest.mark.integration

#: Columns that say when or where this copy of the files was processed, not what they contain.
RUN_SPECIFIC = {"processed_at", "report_path"}


def published_digests(published: Path) -> dict[str, tuple]:
    """Row count and content hash per published mart, run-specific columns left out."""
    with duckdb.connect(str(published), read_only=True) as con:
        columns: dict[str, list[str]] = {}
        for table, column, kind in con.execute(
            "select table_name, column_name, data_type from duckdb_columns() where not internal "
            "order by table_name, column_index"
        ).fetchall():
            if table != META_TABLE and column not in RUN_SPECIFIC:
                name = f'"{column}"'
                columns.setdefault(table, []).append(
                    f"round({name}, 6)" if kind in ("DOUBLE", "FLOAT") else name
                )
        return {
            table: con.execute(
                f"select count(*), md5(coalesce(string_agg(r, chr(10) order by r), '')) "
                f'from (select row({", ".join(cols)})::varchar as r from "{table}")'
            ).fetchall()[0]
            for table, cols in columns.items()
        }


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.message for e in instance.all_logs(run_id) if e.message]


def _with_table_t(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:  # the reader's query; harmless for the pipeline
        con.execute("create table if not exists main.t as select 1 as i")


def test_a_reader_held_for_a_while_makes_the_refresh_wait_then_complete(
    refreshed_env: Path, dagster_instance: dg.DagsterInstance
):
    warehouse = refreshed_env / "warehouse.duckdb"
    _with_table_t(warehouse)
    reader = hold_read_only(warehouse, 300)

    def close_once_the_run_waits() -> None:
        """The session ends (a few seconds) after the run has said it is waiting for it."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            runs = dagster_instance.get_runs()
            if runs and any(
                "waiting for process" in m for m in _messages(dagster_instance, runs[0].run_id)
            ):
                time.sleep(2)
                break
            time.sleep(0.5)
        reader.kill()

    closer = threading.Thread(target=close_once_the_run_waits)
    closer.start()
    try:
        result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)
    finally:
        reader.kill()
        closer.join()
    assert result.success
    waited = [m for m in _messages(dagster_instance, result.run_id) if "waiting for process" in m]
    assert waited and f"process {reader.pid} (" in waited[0] and str(warehouse) in waited[0]
    snapshot = load_settings().warehouse_snapshot_path
    with duckdb.connect(str(snapshot), read_only=True) as con:
        runs = con.execute("select count(distinct run_id) from ops.gate_results").fetchall()
    assert runs == [(2,)], "the copy for queries is refreshed at the end of the run"


def test_a_reader_that_never_closes_fails_the_run_naming_it_after_the_bound(
    refreshed_env: Path, dagster_instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("SMO_WAREHOUSE_LOCK_WAIT_SECONDS", "2")
    warehouse = refreshed_env / "warehouse.duckdb"
    _with_table_t(warehouse)
    reader = hold_read_only(warehouse, 300)
    try:
        result = dg.execute_job(
            dg.reconstructable(refresh_job), instance=dagster_instance, raise_on_error=False
        )
        assert not result.success
        # what `make demo` prints
        said = "\n".join(_failure_lines(result.run_id, result.all_events))
    finally:
        reader.kill()
        reader.wait()
    step = said[said.index("step smo_deliveries failed") :]
    assert f"is held by process {reader.pid} (" in step and str(warehouse) in step
    assert "SMO_WAREHOUSE_LOCK_WAIT_SECONDS" in step and "warehouse.snapshot.duckdb" in step
    assert "Traceback" not in said and "IOException" not in said


#: Waits for this test's `dbt build` process, then takes the warehouse before dbt opens it
#: (dbt spends seconds importing and parsing first) and holds it until that dbt process is gone
#: and argv[2] seconds more.
AMBUSH = """
import sys, time, duckdb
from pathlib import Path
mine = ("SMO_WAREHOUSE_PATH=" + sys.argv[1]).encode()
while True:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\\0")
            ours = mine in cmdline.with_name("environ").read_bytes().split(b"\\0")
        except OSError:
            continue
        if ours and any(a.endswith(b"dbt") for a in args) and b"build" in args:
            con = duckdb.connect(sys.argv[1], read_only=True)
            print("open", flush=True)
            while cmdline.exists():  # until that dbt gives up (or ends), and a little more
                time.sleep(0.1)
            time.sleep(float(sys.argv[2]))
            sys.exit(0)
    time.sleep(0.05)
"""


def test_a_reader_that_takes_the_file_before_dbt_opens_it_delays_the_build_only(
    refreshed_env: Path, dagster_instance: dg.DagsterInstance
):
    warehouse = refreshed_env / "warehouse.duckdb"
    ambush = subprocess.Popen(
        [sys.executable, "-c", AMBUSH, str(warehouse), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        result = dg.execute_job(
            dg.reconstructable(refresh_job),
            instance=dagster_instance,
            tags={"smo/rebuild": "true"},  # as new deliveries would
        )
        assert ambush.stdout.readline().strip() == "open", "the reader never saw dbt start"
    finally:
        ambush.kill()
        ambush.wait()
    assert result.success
    said = _messages(dagster_instance, result.run_id)
    assert any(f"process {ambush.pid} (" in m and "starting dbt build again" in m for m in said)
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["bi", "oversight"]) in materialized


def test_two_refreshes_launched_together_both_finish_with_the_data_of_one(
    data_dir: Path, refreshed_portfolio: Path
):
    env = dict(os.environ)
    demos = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestration.demo"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [demo.communicate(timeout=900)[0] for demo in demos]
    for demo, output in zip(demos, outputs, strict=True):
        assert demo.returncode == 0, output[-3000:]
        assert "succeeded" in output

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_runs()
        assert len(runs) == 2 and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        # The writer pool really serialised them: no two steps that open the warehouse ran at
        # the same time (the report reads only the published file).
        spans = []
        for run in runs:
            started: dict[str, float] = {}
            for event in instance.all_logs(run.run_id):
                step, kind = event.step_key, event.dagster_event_type
                if not step or "oversight_report" in step:
                    continue
                if kind == dg.DagsterEventType.STEP_START:
                    started[step] = event.timestamp
                elif kind == dg.DagsterEventType.STEP_SUCCESS:
                    spans.append((started[step], event.timestamp, run.run_id, step))
    spans.sort()
    overlaps = [
        (a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1] and a[2] != b[2]
    ]
    assert not overlaps, overlaps

    published = load_settings().publish_dir / "oversight.duckdb"
    assert published_digests(published) == published_digests(
        refreshed_portfolio / "publish" / "oversight.duckdb"
    )
