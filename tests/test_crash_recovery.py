"""Crash recovery: a refresh killed with SIGKILL (kill -9) at a chosen point, then a plain run.

The killed run is the real `oversight_refresh` job in a child process, run through
`execute_job` against a persistent Dagster instance (the project's dagster.yaml, so the
`duckdb_writer` pool has its limit of one) like `make demo`; `SMO_TEST_KILL_AT` makes it kill
itself at the named point (core/crash_points.py). The next run is an ordinary one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from core.settings import PROJECT_ROOT
from orchestration.demo import refresh_job
from orchestration.instance import ensure_dagster_home
from publishing.bi_database import (
    META_TABLE,
    current_parquet_set,
    published_publish_id,
    published_run_id,
)
from publishing.report import report_matches

pytestmark = pytest.mark.integration

CHILD = """
import sys
import dagster as dg
from orchestration.demo import refresh_job
from orchestration.instance import ensure_dagster_home

ensure_dagster_home()
tags = dict(tag.split("=", 1) for tag in sys.argv[1:])
with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance, tags=tags)
    print(result.run_id, result.success, flush=True)
"""


def run_killed_refresh(kill_at: str, *tags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SMO_TEST_KILL_AT": kill_at}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *tags],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == -9, f"the child was not killed at {kill_at}: {done.stderr[-2000:]}"
    return done


def mart_digests(published: Path) -> dict[str, tuple]:
    """Row count and a content hash per published table (meta aside): what a BI reader sees.

    Exact, doubles included: a rebuild from the same deliveries gives the same marts to the bit
    (docs/kpis.md, "Reproducible marts"; tests/test_reproducible_marts.py).
    """
    with duckdb.connect(str(published), read_only=True) as con:
        columns: dict[str, list[str]] = {}
        for table, column in con.execute(
            "select table_name, column_name from duckdb_columns() where not internal "
            "order by table_name, column_index"
        ).fetchall():
            if table != META_TABLE:
                columns.setdefault(table, []).append(f'"{column}"')
        return {
            table: con.execute(
                f"select count(*), md5(coalesce(string_agg(r, chr(10) order by r), '')) "
                f'from (select row({", ".join(cols)})::varchar as r from "{table}")'
            ).fetchall()[0]
            for table, cols in columns.items()
        }


@pytest.fixture
def persistent_home(refreshed_env: Path) -> Path:
    """DAGSTER_HOME with the project's dagster.yaml (pool limits), as `make setup` leaves it."""
    home = ensure_dagster_home()
    assert (home / "dagster.yaml").exists()
    return home


@pytest.mark.parametrize("kill_at", ["publish_gate", "publish", "publish_swap"])
def test_a_build_killed_before_its_publish_is_published_by_the_next_plain_run(
    refreshed_env: Path, refreshed_portfolio: Path, persistent_home: Path, kill_at: str
):
    publish_dir = refreshed_env / "publish"
    clean = mart_digests(publish_dir / "oversight.duckdb")
    first_publish = published_run_id(publish_dir)
    first_set = current_parquet_set(publish_dir)

    # A rebuild (forced, as a changed input would) killed after dbt build passed and recorded
    # its build, before the BI file was replaced.
    run_killed_refresh(kill_at, "smo/rebuild=true")
    assert published_run_id(publish_dir) == first_publish, "the killed run must not publish"
    assert current_parquet_set(publish_dir) == first_set, "nor switch the Parquet set"
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb"), read_only=True) as con:
        last_build = con.execute(
            "select run_id from ops.dbt_builds order by built_at desc limit 1"
        ).fetchall()[0][0]
    assert last_build != first_publish, "dbt build should have passed before the kill"

    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance)
        assert result.success
        said = [
            e.message
            for e in instance.all_logs(result.run_id)
            if e.message and "was not published" in e.message
        ]
    assert said and last_build in said[0], "the run log must say why it rebuilds"
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["bi", "oversight"]) in materialized
    assert dg.AssetKey(["bi", "oversight_report"]) in materialized
    assert published_run_id(publish_dir) == result.run_id
    assert current_parquet_set(publish_dir).name == published_publish_id(publish_dir)
    assert mart_digests(publish_dir / "oversight.duckdb") == clean


def test_a_run_killed_holding_the_writer_slot_is_failed_and_the_next_run_completes(
    refreshed_env: Path, persistent_home: Path
):
    run_killed_refresh("smo_deliveries")  # inside the first step of the duckdb_writer pool

    with dg.DagsterInstance.get() as instance:
        (dead,) = instance.get_runs()
        assert dead.status == dg.DagsterRunStatus.STARTED
        held = instance.event_log_storage.get_concurrency_info("duckdb_writer")
        assert [slot.run_id for slot in held.claimed_slots] == [dead.run_id]

        result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance)

        assert result.success
        dead = instance.get_run_by_id(dead.run_id)
        assert dead.status == dg.DagsterRunStatus.FAILURE  # run_failure_alert fires on this
        failure = [
            e
            for e in instance.all_logs(dead.run_id)
            if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
        ]
        assert failure and "is gone" in failure[0].message
        said = [e.message for e in instance.all_logs(result.run_id) if dead.run_id in e.message]
        assert said and "marked FAILURE and its slots freed" in said[0]
        held = instance.event_log_storage.get_concurrency_info("duckdb_writer")
        assert not held.claimed_slots


def test_a_failing_registry_never_blocks_the_smo_marts(refreshed_env: Path, dagster_instance):
    publish_dir = refreshed_env / "publish"
    with duckdb.connect(str(publish_dir / "oversight.duckdb"), read_only=True) as con:
        registry_before = con.execute("select registry_data_timestamp from meta").fetchall()
    # A truncated registry answer (the replay source's /version, as a cut connection would)
    version = refreshed_env / "data" / "registry" / "version.json"
    version.write_text(version.read_text()[:20])

    # a rebuild (forced, as new deliveries would) with the registry failing
    result = dg.execute_job(
        dg.reconstructable(refresh_job), instance=dagster_instance, tags={"smo/rebuild": "true"}
    )

    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["bi", "oversight"]) in materialized
    [current] = [c for c in result.get_asset_check_evaluations()
                 if c.check_name == "registry_current"]  # fmt: skip
    assert not current.passed and "nothing stored" in current.description
    with duckdb.connect(str(publish_dir / "oversight.duckdb"), read_only=True) as con:
        run_id, stamp, stale, reason = con.execute(
            "select dagster_run_id, registry_data_timestamp, registry_stale, "
            "registry_stale_reason from meta"
        ).fetchall()[0]
    assert run_id == result.run_id
    assert [(stamp,)] == registry_before  # the previous snapshot's data timestamp
    assert stale is True and "version" in reason
    report = (publish_dir / "oversight-report.html").read_text()
    assert f'registry data {stamp} <strong class="stale">(STALE: registry fetch failing' in report


def test_a_report_left_behind_by_a_kill_after_the_publish_is_regenerated(
    refreshed_env: Path, persistent_home: Path
):
    publish_dir = refreshed_env / "publish"
    old_report = (publish_dir / "oversight-report.html").read_bytes()
    # killed after the new publish, between the report of this publish and the latest report
    run_killed_refresh("report", "smo/rebuild=true")
    publish_id = published_publish_id(publish_dir)
    assert (publish_dir / "oversight-report.html").read_bytes() == old_report
    assert not report_matches(publish_dir)

    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance)
        assert result.success
        said = [e.message for e in instance.all_logs(result.run_id) if "regenerated" in e.message]
    assert said and publish_id in said[0]
    assert report_matches(publish_dir)
    assert f"Publish {publish_id} " in (publish_dir / "oversight-report.html").read_text()
    # the killed run held no pool slot (the report is outside the pool) and is failed too
    with dg.DagsterInstance.get() as instance:
        statuses = {run.run_id: run.status for run in instance.get_runs()}
    assert sorted(s.value for s in statuses.values()) == ["FAILURE", "SUCCESS"]


def test_a_delivery_killed_between_its_ledger_row_and_its_move_is_settled_by_the_next_run(
    refreshed_env: Path, persistent_home: Path
):
    data = refreshed_env / "data"
    [archived] = (data / "archive" / "SMO-IBERIA").glob("*__IBERIA_personal_20261102.csv")
    name = "IBERIA_personal_20261123.csv"  # the same staffing, delivered as a new week
    delivered = data / "inbox" / "SMO-IBERIA" / name
    shutil.copy(archived, delivered)

    run_killed_refresh("inbox_after_record")  # the ledger row is committed, the file not moved
    assert delivered.exists()

    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance)
        assert result.success
        said = [e.message for e in instance.all_logs(result.run_id) if "recovered" in e.message]
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select delivery_id, status, stored_path, file_state from ops.deliveries "
            "where file_name = ?",
            [name],
        ).fetchall()
    [(delivery_id, status, stored, file_state)] = rows  # recorded once: no DUPLICATE
    assert status in ("ACCEPTED", "REJECTED") and file_state == "DONE"
    assert not delivered.exists() and Path(stored).read_bytes() == archived.read_bytes()
    assert said and f"delivery {delivery_id} {status} SMO-IBERIA/{name}" in said[0]
