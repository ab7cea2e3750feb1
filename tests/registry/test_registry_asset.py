"""The registry asset on real Dagster machinery: metadata, and failures that store nothing."""

from __future__ import annotations

import json

import dagster as dg
import duckdb

from orchestration.defs.registry import registry_studies
from orchestration.lib.warehouse import DuckDBWarehouse
from tests.conftest import project_instance


def test_registry_asset_reports_what_it_fetched(project_env, data_dir, monkeypatch):
    monkeypatch.setenv("SMO_REGISTRY_NCT_IDS", ",".join(
        json.loads((data_dir / "ground_truth.json").read_text())["registry"]["portfolio_nct_ids"]))  # fmt: skip
    with project_instance() as instance:
        result = dg.materialize(
            [registry_studies], resources={"warehouse": DuckDBWarehouse()}, instance=instance
        )
    assert result.success
    [raw] = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.path[-1] == "raw_studies"
    ]
    metadata = raw.materialization.metadata
    assert metadata["data_timestamp"].value == "2026-11-16T09:00:00"
    assert metadata["mode"].value == "replay"
    assert metadata["incremental_since"].value == "full fetch"
    assert metadata["new_record_versions"].value == metadata["records_fetched"].value > 0
    assert metadata["requests"].value == 0  # replay: no HTTP at all

    # Again, with the registry's data timestamp unchanged: nothing is asked or stored, the flat
    # tables stay as they are and say how many rows they hold.
    with project_instance() as instance:
        again = dg.materialize(
            [registry_studies], resources={"warehouse": DuckDBWarehouse()}, instance=instance
        )
    assert again.success
    by_table = {m.asset_key.path[-1]: m.materialization.metadata
                for m in again.get_asset_materialization_events()}  # fmt: skip
    assert by_table["raw_studies"]["unchanged_since"].value == "2026-11-16T09:00:00"
    assert by_table["raw_studies"]["records_fetched"].value == 0
    assert by_table["studies"]["dagster/row_count"].value > 0
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from registry.fetches").fetchall()[0][0] == 1


def test_an_unreadable_registry_warns_stores_nothing_and_keeps_the_previous_snapshot(
    project_env, data_dir, monkeypatch
):
    monkeypatch.setenv("SMO_REGISTRY_NCT_IDS", "NCT90000001")
    version = data_dir / "registry" / "version.json"
    version.write_text('{"dataTimestamp": "2026-11-')  # truncated
    with project_instance() as instance:
        result = dg.materialize([registry_studies], resources={"warehouse": DuckDBWarehouse()},
                                instance=instance, raise_on_error=False)  # fmt: skip
    # The step does not fail (so dbt and the publish run for the SMOs); the warning says why.
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "registry_current" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "nothing stored" in check.description and "version" in check.description
    [raw] = [m for m in result.get_asset_materialization_events()
             if m.asset_key.path[-1] == "raw_studies"]  # fmt: skip
    assert raw.materialization.metadata["stale"].value is True
    assert not any(e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from registry.raw_studies").fetchone()[0] == 0
        assert con.execute("select count(*) from registry.fetches").fetchone()[0] == 0
        assert con.execute("select count(*) from registry.studies").fetchone()[0] == 0
        [(error, resolved)] = con.execute(
            "select error, resolved_at from registry.fetch_failures"
        ).fetchall()
    assert "version" in error and resolved is None
