"""Materialize the real assets into a temporary DuckDB file and look at what landed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from expectations.feeds import FEEDS
from orchestration.demo import refresh_job
from tests.conftest import project_instance

pytestmark = pytest.mark.integration


def _run_refresh(instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteJobResult:
    return dg.execute_job(dg.reconstructable(refresh_job), instance=instance, **kwargs)


def _checks(
    evaluations: list[dg.AssetCheckEvaluation], passed: bool | None = None
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (c.asset_key.to_user_string(), c.check_name): c
        for c in evaluations
        if passed is None or c.passed == passed
    }


def test_full_refresh_loads_every_feed_and_builds_staging(
    refreshed_portfolio: Path, tmp_path: Path
):
    """The first refresh of the small portfolio is the shared fixture's (`refreshed_portfolio`,
    the same job on a fresh warehouse): its run is read back from its Dagster home, not run
    again."""
    project_env, data_dir = refreshed_portfolio, refreshed_portfolio / "data"
    home = shutil.copytree(refreshed_portfolio / "dagster_home", tmp_path / "dagster_home")
    with project_instance(home) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS
        run_id = run.run_id
        evaluations = [
            event.dagster_event.asset_check_evaluation_data
            for event in instance.all_logs(
                run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]

    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        statuses = dict(
            con.execute("select status, count(*) from ops.deliveries group by 1").fetchall()
        )
        for feed in ("sites", "subjects", "visits", "deviations", "payments", "staffing"):
            current = con.execute(
                f"select count(*) from raw.{feed} r join ops.current_deliveries c "
                f"on c.delivery_id = r._delivery_id and c.feed = '{feed}' "
                f"and (c.study_id = '*' or c.study_id = r.study_id)"
                if feed != "staffing"
                else "select count(*) from raw.staffing r join ops.current_deliveries c "
                "on c.delivery_id = r._delivery_id and c.feed = 'staffing'"
            ).fetchone()[0]
            staged = con.execute(f"select count(*) from staging.stg_smo__{feed}").fetchone()[0]
            assert staged == current > 0, feed
        studies = con.execute("select count(*) from marts.study_enrollment").fetchone()[0]
        weeks = con.execute("select count(distinct as_of_date) from marts.kpi_weekly_history")
        weeks = weeks.fetchone()[0]
        registry_roles = dict(
            con.execute("select role, count(*) from registry.studies group by 1").fetchall()
        )
        fetches = con.execute("select since, new_versions from registry.fetches").fetchall()
    truth = json.loads((data_dir / "ground_truth.json").read_text())["registry"]
    assert registry_roles == {
        "portfolio": len(truth["portfolio_nct_ids"]),
        "peer": truth["peer_count"],
    }
    assert fetches == [(None, len(truth["portfolio_nct_ids"]) + truth["peer_count"])]
    assert set(statuses) == {"ACCEPTED", "SUPERSEDED"}
    ground_truth = json.loads((data_dir / "ground_truth.json").read_text())
    assert studies == len(ground_truth["studies"])
    assert weeks == len(ground_truth["delivery_dates"])
    assert not list((data_dir / "inbox").rglob("*.*")), "processed files leave the inbox"

    with duckdb.connect(str(project_env / "publish" / "oversight.duckdb"), read_only=True) as con:
        tables = {t for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()}
        (published_run,) = con.execute("select dagster_run_id from meta").fetchall()[0]
    assert published_run == run_id and {"site_flags", "smo_scorecard", "meta"} <= tables

    checks = _checks(evaluations)
    assert checks[("raw/subjects", "contract")].passed
    assert checks[("raw/subjects", "deliveries_rejected")].passed
    assert all(c.passed for c in checks.values())


def test_rejected_delivery_warns_with_its_report_and_the_run_goes_on(
    project_env: Path, data_dir: Path, dagster_instance
):
    inbox = data_dir / "inbox" / "SMO-IBERIA"
    bad = next(inbox.glob("IBERIA_pacientes_*"))
    bad.write_bytes(bad.read_bytes().replace(b";", b"|"))
    result = _run_refresh(dagster_instance)
    assert result.success
    warned = _checks(result.get_asset_check_evaluations(), passed=False)
    # The SMO's visits of that week are accepted while its subjects fall back to the previous
    # snapshot, so visits of subjects screened that week have no site yet: a warning, not a stop.
    assert set(warned) - {
        ("intermediate/int_snapshot__visits", "not_null_int_snapshot__visits_site_id")
    } == {("raw/subjects", "deliveries_rejected")}
    check = warned[("raw/subjects", "deliveries_rejected")]
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["rejected"].value == 1
    assert bad.name in check.metadata["reports"].value
    quarantine = data_dir / "quarantine" / "SMO-IBERIA"
    assert any(p.name.endswith(bad.name + ".report.md") for p in quarantine.iterdir())


def test_contract_violation_in_current_rows_blocks_downstream(
    refreshed_env: Path, dagster_instance
):
    project_env = refreshed_env
    with duckdb.connect(str(project_env / "warehouse.duckdb")) as con:
        con.execute("update raw.subjects set screened_date = null where subject_id in "
                    "(select subject_id from raw.subjects limit 1)")  # fmt: skip
        con.execute("drop view staging.stg_smo__subjects")
    result = _run_refresh(dagster_instance, raise_on_error=False)
    failed = _checks(result.get_asset_check_evaluations(), passed=False)
    assert failed[("raw/subjects", "contract")].severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
                    if e.asset_key}  # fmt: skip
    assert "raw/subjects" in materialized
    assert not any(key.startswith(("staging/", "marts/")) for key in materialized)
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        views = {
            r[0]
            for r in con.execute(
                "select view_name from duckdb_views() where schema_name = 'staging'"
            ).fetchall()
        }
    assert "stg_smo__subjects" not in views


def test_failing_dbt_test_blocks_the_marts(refreshed_env: Path, dagster_instance):
    warehouse = refreshed_env / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        marts = [r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()]  # fmt: skip
        for table in marts:
            con.execute(f"drop table marts.{table}")
        con.execute("update raw.sites set status = 'ON_HOLD'")  # passes no gate; planted here

    # Only the dbt assets: a full refresh would stop earlier, at the roster's contract check.
    from orchestration.defs.dbt_models import warehouse_models

    result = _run_refresh(
        dagster_instance, asset_selection=list(warehouse_models.keys), raise_on_error=False
    )
    failed = sorted(
        (c.asset_key.to_user_string(), c.check_name)
        for c in result.get_asset_check_evaluations()
        if not c.passed
    )
    status_test = (
        "accepted_values_{}_status__PLANNED__SELECTED__ACTIVATED__ENROLLING__CLOSED__DROPPED"
    )
    # the roster history fails first; the current roster view is built on it, so it is skipped
    assert failed == [
        ("staging/stg_smo__sites_history", status_test.format("stg_smo__sites_history")),
    ]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rebuilt = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts'"
        ).fetchall()
    from orchestration.definitions import defs

    graph = defs().get_repository_def().asset_graph
    rosters = dg.AssetSelection.assets(dg.AssetKey(["staging", "stg_smo__sites_history"]))
    blocked = {
        key.path[-1] for key in rosters.downstream().resolve(graph) if key.path[0] == "marts"
    }
    # marts fed by the failing rosters are not rebuilt; marts that do not read them are
    assert len(blocked) > 10
    assert {name for (name,) in rebuilt} == set(marts) - blocked
    # (site_staffing lists roster sites, so that an SMO without staffing shows why: blocked too)
    assert {name for (name,) in rebuilt} == {
        "deliveries_used", "delivery_log", "feed_freshness", *_reference_marts()
    }  # fmt: skip


def test_inbox_sensor_requests_a_run_only_for_ready_files(
    project_env: Path, data_dir: Path, monkeypatch
):
    from orchestration.defs.automation import inbox_sensor

    monkeypatch.setenv("SMO_INBOX_SETTLE_SECONDS", "0")
    with project_instance() as instance:
        request = inbox_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(request, dg.RunRequest) and request.run_key
        again = inbox_sensor(dg.build_sensor_context(instance=instance))
        assert again.run_key == request.run_key  # same waiting files: same run key, no second run

        for path in list((data_dir / "inbox").rglob("*.*")):
            path.rename(path.with_name(path.name + ".part"))
        skipped = inbox_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(skipped, dg.SkipReason)
    shutil.rmtree(data_dir / "inbox")


def _reference_marts() -> set[str]:
    """Marts built from seeds alone (reference data such as the KRI catalog): they have rows
    before any delivery and do not depend on any feed."""
    from orchestration.lib.dbt import load_manifest

    manifest = load_manifest()
    nodes = manifest["nodes"]

    def sources(unique_id: str, seen: set[str]) -> bool:
        for parent in nodes.get(unique_id, {}).get("depends_on", {}).get("nodes", []):
            if parent.startswith("source.") or (
                parent not in seen and (seen.add(parent) or sources(parent, seen))
            ):
                return True
        return False

    return {
        node["name"]
        for unique_id, node in nodes.items()
        if node["resource_type"] == "model"
        and node["schema"].endswith("marts")
        and not sources(unique_id, set())
    }


def test_first_refresh_before_any_delivery_builds_empty_marts(
    project_env: Path, data_dir: Path, dagster_instance
):
    shutil.rmtree(data_dir / "inbox")
    (data_dir / "inbox").mkdir()
    result = _run_refresh(dagster_instance)
    assert result.success
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        names = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'marts'"
        ).fetchall()
        marts = [
            (name, con.execute(f"select count(*) from marts.{name}").fetchall()[0][0])
            for (name,) in names
        ]
        forecast_types = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = 'enrollment_forecast' "
            "and column_name in ('as_of_date', 'target_date_p50', 'gamma_alpha')"
        ).fetchall()
        assert len(marts) > 10
        reference = _reference_marts()
        assert reference, "the KRI catalog is a mart built from seeds"
        assert all(rows == 0 for name, rows in marts if name not in reference), marts
        assert all(rows > 0 for name, rows in marts if name in reference), marts
    assert sorted(forecast_types) == [
        ("as_of_date", "DATE"),
        ("gamma_alpha", "DOUBLE"),
        ("target_date_p50", "DATE"),
    ]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_failing_expectation_blocks_the_publish_and_keeps_the_last_one(
    refreshed_env: Path, dagster_instance
):
    project_env = refreshed_env
    published = project_env / "publish" / "oversight.duckdb"
    before = _sha256(published)

    # The SMO stops reporting one site: roster row and all its data vanish from every delivery.
    # Every warehouse test still passes; the publish gate sees a site disappear.
    with duckdb.connect(str(project_env / "warehouse.duckdb")) as con:
        site = con.execute("select min(site_id) from raw.subjects").fetchall()[0][0]
        con.execute(
            "delete from raw.visits where subject_id in "
            "(select subject_id from raw.subjects where site_id = ?)",
            [site],
        )
        for feed in ("sites", "subjects", "deviations", "payments"):
            con.execute(f"delete from raw.{feed} where site_id = ?", [site])
    second = _run_refresh(dagster_instance, raise_on_error=False)
    assert not second.success
    failed = _checks(second.get_asset_check_evaluations(), passed=False)
    assert ("marts/site_enrollment", "publish_gate") in failed
    assert {name for _, name in failed} == {"publish_gate"}
    check = failed[("marts/site_enrollment", "publish_gate")]
    assert check.metadata["outcome"].value == "data_failed"
    assert "expect_previously_published_entities_present" in check.description
    assert f"|{site}" in check.description and "previously published missing" in check.description
    materialized = {e.asset_key for e in second.get_asset_materialization_events()}
    assert dg.AssetKey(["bi", "oversight"]) not in materialized
    assert _sha256(published) == before, "a blocked publish must leave the last one untouched"

    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        per_gate = dict(
            con.execute(
                "select gate, count(*) from ops.gate_results where run_id = ? group by gate",
                [second.run_id],
            ).fetchall()
        )
        failed_rows = con.execute(
            "select target, check_name, observed_value from ops.gate_results "
            "where run_id = ? and not success",
            [second.run_id],
        ).fetchall()
    assert set(per_gate) == {"delivery", "warehouse", "publish"}
    assert per_gate["delivery"] == len(FEEDS)  # the contract of each feed's current rows
    assert per_gate["warehouse"] > 100  # every dbt data test (unit tests: test_dbt_unit_tests.py)
    assert (
        "marts/site_enrollment",
        "expect_previously_published_entities_present(smo_id+study_id+site_id)",
    ) in {(target, check) for target, check, _ in failed_rows}


def test_a_refresh_with_nothing_new_skips_the_rebuild_and_keeps_the_publish(
    refreshed_env: Path, dagster_instance
):
    published = refreshed_env / "publish" / "oversight.duckdb"
    before = _sha256(published)
    from orchestration.defs.dbt_models import warehouse_models

    dbt_keys = set(warehouse_models.keys)

    again = _run_refresh(dagster_instance)

    assert again.success
    materialized = {e.asset_key for e in again.get_asset_materialization_events()}
    assert not materialized & dbt_keys
    assert dg.AssetKey(["bi", "oversight"]) not in materialized
    assert not [c for c in again.get_asset_check_evaluations() if c.check_name == "publish_gate"]
    assert _sha256(published) == before

    forced = _run_refresh(dagster_instance, tags={"smo/rebuild": "true"})

    assert forced.success
    rebuilt = {e.asset_key for e in forced.get_asset_materialization_events()}
    assert dbt_keys <= rebuilt and dg.AssetKey(["bi", "oversight"]) in rebuilt
    assert _sha256(published) != before
