"""The code location loads and is wired the way the warehouse needs."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from orchestration.definitions import defs
from orchestration.lib.run_health import in_process_releasing_dead_runs
from orchestration.lib.warehouse import WAREHOUSE_WRITER_POOL

WAREHOUSE_RESOURCES = {"warehouse", "dbt"}


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    return defs().get_repository_def()


def test_definitions_load_with_the_refresh_job(repo):
    job = repo.get_job("oversight_refresh")
    # Dagster's in-process executor, preceded by freeing the pool slots of dead runs
    assert job.executor_def is in_process_releasing_dead_runs
    assert job.executor_def.name == dg.in_process_executor.name
    assert repo.asset_graph.get_all_asset_keys(), "no assets loaded"


def test_dbt_models_are_keyed_by_duckdb_schema_and_table(repo):
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert {
        "staging/stg_smo__sites",
        "staging/stg_smo__subjects",
        "raw/visits",
        "ops/deliveries",
    } <= keys
    assert {"marts/site_flags", "marts/smo_scorecard", "marts/enrollment_forecast"} <= keys
    assert repo.asset_graph.get(dg.AssetKey(["marts", "site_flags"])).group_name == "marts"


def test_every_dbt_source_is_loaded_by_a_dagster_asset(repo):
    graph = repo.asset_graph
    dbt_assets = [ad for ad in graph.assets_defs if "dbt" in ad.required_resource_keys]
    assert dbt_assets
    upstream = {dep for ad in dbt_assets for dep in ad.dependency_keys} - {
        key for ad in dbt_assets for key in ad.keys
    }
    assert upstream, "dbt models declare no sources"
    for key in upstream:
        node = graph.get(key)
        assert node.is_materializable, f"dbt source {key.to_user_string()} has no loading asset"


def test_every_warehouse_writer_is_in_the_writer_pool(repo):
    writers = [
        ad
        for ad in repo.asset_graph.assets_defs
        if ad.is_executable and ad.required_resource_keys & WAREHOUSE_RESOURCES
    ]
    assert writers
    for ad in writers:
        names = ", ".join(key.to_user_string() for key in ad.keys)
        assert ad.node_def.pool == WAREHOUSE_WRITER_POOL, f"{names} writes outside the pool"


def test_error_severity_dbt_tests_are_blocking_checks(repo):
    from orchestration.lib.dbt import dbt_project

    manifest = json.loads(dbt_project.manifest_path.read_text())
    severity = {
        node["name"]: node["config"]["severity"].lower()
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test"
    }
    checks = [
        spec
        for ad in repo.asset_graph.assets_defs
        for spec in ad.check_specs
        if "dbt" in ad.required_resource_keys
    ]
    assert len(checks) > 50
    assert {spec.name for spec in checks} == set(severity)
    for spec in checks:
        assert spec.blocking == (severity[spec.name] == "error"), spec.name
    assert "warn" in severity.values(), "some tests are deliberately warnings"


def test_inbox_sensor_and_delivery_job_are_defined(repo):
    sensor = repo.get_sensor_def("inbox_sensor")
    assert sensor.job_name == "delivery_refresh"
    job_keys = repo.get_job("delivery_refresh").asset_layer.selected_asset_keys
    assert dg.AssetKey(["raw", "subjects"]) in job_keys
    assert dg.AssetKey(["staging", "stg_smo__subjects"]) in job_keys


def test_every_feed_has_a_blocking_contract_check(repo):
    specs = {
        (s.asset_key.to_user_string(), s.name): s
        for ad in repo.asset_graph.assets_defs
        for s in ad.check_specs
    }
    for feed in ("sites", "subjects", "visits", "deviations", "payments", "staffing"):
        assert specs[(f"raw/{feed}", "contract")].blocking
        assert not specs[(f"raw/{feed}", "deliveries_rejected")].blocking
