"""Materialize the real assets into a temporary DuckDB file and look at what landed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.demo import refresh_job

pytestmark = pytest.mark.integration


def _run_refresh(instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteJobResult:
    return dg.execute_job(dg.reconstructable(refresh_job), instance=instance, **kwargs)


def test_full_refresh_builds_every_table(project_env: Path, dagster_instance):
    result = _run_refresh(dagster_instance)
    assert result.success

    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        raw_sites = con.execute("select count(*) from raw.sites").fetchone()[0]
        staged = con.execute("select count(*) from staging.stg_smo__sites").fetchone()[0]
        activation = dict(
            con.execute(
                "select study_id, share_sites_activated from marts.study_site_activation"
            ).fetchall()
        )
    assert raw_sites == staged > 0
    # STUDY-1: three sites, all enrolling or activated. STUDY-2: PLANNED, CLOSED -> 1 of 2.
    assert activation == {"STUDY-1": 1.0, "STUDY-2": 0.5}

    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)


def test_failing_dbt_test_blocks_the_mart(project_env: Path, dagster_instance):
    warehouse = project_env / "warehouse.duckdb"
    assert _run_refresh(dagster_instance).success
    with duckdb.connect(str(warehouse)) as con:
        con.execute("drop table marts.study_site_activation")
        con.execute("update raw.sites set status = 'ON_HOLD' where site_id = 'S001'")

    result = _run_refresh(
        dagster_instance,
        asset_selection=[
            dg.AssetKey(["staging", "stg_smo__sites"]),
            dg.AssetKey(["marts", "study_site_activation"]),
        ],
        raise_on_error=False,
    )

    failed = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert [c.check_name for c in failed] == [
        "accepted_values_stg_smo__sites_status__PLANNED__SELECTED__ACTIVATED__ENROLLING__CLOSED__DROPPED"
    ]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        marts = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'marts'"
        ).fetchone()[0]
    assert marts == 0, "the mart was rebuilt although its upstream blocking check failed"
