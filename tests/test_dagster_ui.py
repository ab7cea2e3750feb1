"""What a data engineer sees in the Dagster UI: checks described, row counts on materializations,
a quiet week's checks passed (not skipped) without warnings, and a code location that loads
from the venv without activating it and under the one name the project configures."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from core.settings import PROJECT_ROOT
from orchestration.definitions import defs
from orchestration.lib.dbt import load_manifest
from orchestration.lib.unchanged_checks import UNCHANGED_SINCE
from tests.conftest import project_instance

SKIP_LINE = "Nothing dbt reads has changed"


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    return defs().get_repository_def()


def test_every_asset_check_has_a_description(repo):
    specs = [spec for ad in repo.asset_graph.assets_defs for spec in ad.check_specs]
    assert len(specs) > 100
    missing = [spec.key.to_user_string() for spec in specs if not (spec.description or "").strip()]
    assert not missing, f"{len(missing)} checks without a description, e.g. {missing[:3]}"
    by_name = {spec.name: spec.description for spec in specs}
    # derived from the generic test and its arguments, and a singular test's own description
    assert (
        "is one of: IMPORTANT, NON_IMPORTANT"
        in by_name["accepted_values_stg_smo__deviations_history_severity__IMPORTANT__NON_IMPORTANT"]
    )
    assert "equals the sum over its sites" in by_name["assert_study_enrollment_is_sum_of_sites"]


def _no_dbt_path() -> str:
    path = os.pathsep.join(p for p in ("/usr/bin", "/bin") if Path(p).is_dir())
    if shutil.which("dbt", path=path):
        pytest.skip(f"a dbt is installed system-wide on {path}")
    return path


def test_code_location_loads_without_an_activated_venv():
    """`.venv/bin/dagster dev`: dagster-dbt parses the project on load with the `dbt` on PATH."""
    env = {**os.environ, "PATH": _no_dbt_path(), "DAGSTER_IS_DEV_CLI": "1"}
    env.pop("VIRTUAL_ENV", None)
    code = "from orchestration.definitions import defs; print(len(defs().resolve_all_asset_keys()))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 50


def test_workspace_loads_under_the_configured_location_name(tmp_path):
    """`dagster dev` without arguments reads pyproject: one name, no mismatch warnings."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    assert "smo_oversight" in output
    assert "does not match" not in output


def _latest_materializations(instance: dg.DagsterInstance, keys) -> dict:
    return {
        key: instance.get_latest_materialization_event(key).asset_materialization for key in keys
    }


@pytest.mark.integration
def test_mart_materializations_carry_their_row_count(
    refreshed_env: Path, refreshed_portfolio: Path
):
    with project_instance(_copy_instance(refreshed_portfolio, refreshed_env)) as instance:  # fmt: skip
        marts = [
            key
            for key in instance.get_asset_keys()
            if key.path[0] == "marts" and instance.get_latest_materialization_event(key)
        ]
        assert len(marts) > 10
        materializations = _latest_materializations(instance, marts)
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb"), read_only=True) as con:
        for key, materialization in materializations.items():
            table = ".".join(f'"{p}"' for p in key.path)
            (count,) = con.execute(f"select count(*) from {table}").fetchall()[0]
            assert materialization.metadata["dagster/row_count"].value == count, key


@pytest.mark.integration
def test_a_view_model_is_materialized_without_a_row_count_a_table_with_one(
    refreshed_env: Path, refreshed_portfolio: Path
):
    """Counting a view's rows runs its query (dagster-dbt does not count views either)."""
    manifest = load_manifest()
    kinds = {
        dg.AssetKey([n["schema"], n.get("alias") or n["name"]]): n["config"]["materialized"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model"
    }
    assert {"view", "table"} <= set(kinds.values())
    with project_instance(_copy_instance(refreshed_portfolio, refreshed_env)) as instance:  # fmt: skip
        materializations = _latest_materializations(instance, kinds)
    for key, kind in kinds.items():
        counted = "dagster/row_count" in materializations[key].metadata
        assert counted == (kind != "view"), (key, kind)


def _copy_instance(refreshed_portfolio: Path, env: Path) -> Path:
    """The first refresh's Dagster home beside its warehouse copy: a second run continues it."""
    home = env / "dagster_home"
    shutil.copytree(refreshed_portfolio / "dagster_home", home, dirs_exist_ok=True)
    return home


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.mark.integration
def test_quiet_week_reports_every_check_passed_without_warnings(
    refreshed_env: Path, refreshed_portfolio: Path
):
    from orchestration.demo import refresh_job

    caught = _Warnings()
    loggers = [logging.getLogger(), logging.getLogger("dagster")]
    home = _copy_instance(refreshed_portfolio, refreshed_env)
    with project_instance(home) as instance:
        (first,) = instance.get_run_records()
        for logger in loggers:
            logger.addHandler(caught)
        try:
            result = dg.execute_job(dg.reconstructable(refresh_job), instance=instance)
        finally:
            for logger in loggers:
                logger.removeHandler(caught)
        assert result.success
        logs = instance.all_logs(result.run_id)
        assert any(SKIP_LINE in (e.user_message or "") for e in logs), "the build was not skipped"
        warnings = [e.user_message for e in logs if isinstance(e.level, int) and e.level >= 30]
        assert not warnings and not caught.lines, warnings + caught.lines
        keys = [k for k in refresh_job().asset_layer.asset_graph.asset_check_keys
                if k.asset_key.path[0] == "marts"]  # fmt: skip
        assert len(keys) > 100
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    assert set(latest) == set(keys)
    not_passed = {
        key.to_user_string(): record.status.value
        for key, record in latest.items()
        if record.run_id != result.run_id
        or record.status != AssetCheckExecutionRecordStatus.SUCCEEDED
    }
    assert not not_passed, not_passed
    evaluation = next(iter(latest.values())).event.dagster_event.event_specific_data
    assert evaluation.metadata[UNCHANGED_SINCE].value == first.dagster_run.run_id
