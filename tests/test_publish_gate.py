"""The publish gate: GX suites built from the dbt project, and what they say when they fail."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from expectations.publish_gate import (
    MartRules,
    check_finite,
    mart_rules,
    validate_freshness,
    validate_mart,
)
from orchestration.lib.dbt import dbt_project

NUMERIC = {"double", "integer", "bigint"}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(dbt_project.manifest_path.read_text())


def test_rules_are_read_from_the_dbt_project(manifest):
    rules = mart_rules(manifest)
    assert {"site_enrollment", "site_flags", "smo_scorecard", "enrollment_forecast"} <= set(rules)
    site = rules["site_enrollment"]
    assert site.keys == ("smo_id", "study_id", "site_id")
    assert site.ranges["screen_failure_rate"] == (0, 1)
    assert site.ranges["activation_cycle_days"] == (0, None)
    assert {"smo_id", "study_id", "site_id", "as_of_date"} <= set(site.not_null)
    assert site.entity == ("smo_id", "study_id", "site_id")
    flags = rules["site_flags"]
    assert "z_score" not in flags.ranges and flags.ranges["overdispersion"] == (1, None)
    assert "as_of_date" not in flags.entity
    assert rules["registry_hygiene"].entity == ()  # findings close when the registry is fixed


def test_every_numeric_mart_column_declares_its_possible_range(manifest):
    undeclared = [
        f"{node['name']}.{name}"
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
        for name, column in node["columns"].items()
        if column.get("data_type") in NUMERIC
        and not {"min", "max", "unbounded"} & set(column.get("meta", {}))
    ]
    assert undeclared == []


RULES = MartRules(
    mart="site_enrollment",
    keys=("smo_id", "study_id", "site_id"),
    not_null=("as_of_date", "site_id"),
    ranges={"screen_failure_rate": (0, 1), "activation_cycle_days": (0, None)},
    entity=("smo_id", "study_id", "site_id"),
)


def _frame(**overrides) -> pd.DataFrame:
    rows = [
        {"as_of_date": dt.date(2026, 11, 9), "smo_id": "S", "study_id": "T", "site_id": "OLD",
         "screen_failure_rate": 5.0, "activation_cycle_days": -3},
        {"as_of_date": dt.date(2026, 11, 16), "smo_id": "S", "study_id": "T", "site_id": "A",
         "screen_failure_rate": 0.1, "activation_cycle_days": 60},
        {"as_of_date": dt.date(2026, 11, 16), "smo_id": "S", "study_id": "T", "site_id": "B",
         "screen_failure_rate": 0.2, "activation_cycle_days": 45},
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    for column, values in overrides.items():
        frame.loc[frame["as_of_date"] == dt.date(2026, 11, 16), column] = values
    return frame


def test_good_latest_week_passes_and_older_weeks_are_not_revalidated():
    outcome = validate_mart(_frame(), RULES, {"S|T|A", "S|T|B"})
    assert outcome.success, outcome.summary()
    assert outcome.rows == 2


def test_an_out_of_range_kpi_fails_with_column_and_value():
    outcome = validate_mart(_frame(screen_failure_rate=[0.1, 1.4]), RULES)
    assert not outcome.success and not outcome.validator_errors
    (failure,) = outcome.failures
    assert failure.column == "screen_failure_rate" and failure.examples == [1.4]
    assert "the data failed 1 expectation(s)" in outcome.summary()
    assert "screen_failure_rate" in outcome.summary()


def test_a_duplicate_key_and_a_null_fail():
    outcome = validate_mart(_frame(site_id=["A", "A"]), RULES)
    assert {f.expectation for f in outcome.failures} == {"expect_compound_columns_to_be_unique"}
    outcome = validate_mart(_frame(site_id=["A", None]), RULES)
    assert "expect_column_values_to_not_be_null" in {f.expectation for f in outcome.failures}


def test_a_site_that_disappeared_since_the_last_publish_blocks():
    outcome = validate_mart(_frame(), RULES, {"S|T|A", "S|T|B", "S|T|GONE"})
    (failure,) = outcome.failures
    assert failure.column == "smo_id+study_id+site_id"
    assert failure.examples == ["S|T|GONE"]
    assert "1 of 3 previously published missing" in failure.observed
    assert failure.expectation == "expect_previously_published_entities_present"


def test_a_broken_validator_is_told_apart_from_bad_data():
    broken = MartRules(**{**RULES.__dict__, "ranges": {"no_such_column": (0, 1)}})
    outcome = validate_mart(_frame(), broken)
    assert not outcome.success
    assert outcome.failures == []
    (error,) = outcome.validator_errors
    assert "no_such_column" in error.error
    assert outcome.summary().startswith("marts/site_enrollment: the validator broke")
    errored = [r for r in outcome.gate_rows("run") if r["details"]["validator_error"]]
    assert [r["check_name"] for r in errored] == [
        "expect_column_values_to_be_between(no_such_column)"
    ]


def test_freshness_names_the_smo_that_stopped_delivering():
    used = pd.DataFrame(
        {
            "as_of_date": [dt.date(2026, 11, 16)] * 3,
            "smo_id": ["A", "A", "B"],
            "delivery_date": [dt.date(2026, 11, 16), dt.date(2026, 11, 9), dt.date(2026, 10, 26)],
        }
    )
    assert validate_freshness(used, max_days=21).success
    outcome = validate_freshness(used, max_days=14)
    (failure,) = outcome.failures
    assert failure.examples == ["B: 21 days"]


@pytest.fixture
def planted() -> duckdb.DuckDBPyConnection:
    """A mart with NaN and infinity planted in past and latest weeks; NULL is not a fault."""
    con = duckdb.connect()
    con.execute(
        """
        create table site_enrollment as select * from (values
            (date '2026-11-09', 'S', 'T', 'OLD', 'nan'::double, 3, 1.5::decimal(6, 2)),
            (date '2026-11-16', 'S', 'T', 'A', 0.1, 60, 2.0),
            (date '2026-11-16', 'S', 'T', 'B', null, 45, null),
            (date '2026-11-16', 'S', 'T', 'C', 0.2, 50, 1.0)
        ) as t(as_of_date, smo_id, study_id, site_id, screen_failure_rate,
               activation_cycle_days, fee)
        """
    )
    con.execute("alter table site_enrollment add column cycle_ratio double")
    con.execute("update site_enrollment set cycle_ratio = 'inf'::double where site_id = 'C'")
    con.execute("update site_enrollment set cycle_ratio = '-inf'::double where site_id = 'A'")
    yield con
    con.close()


def test_nan_and_infinity_fail_the_gate_naming_mart_column_and_key(planted):
    keys = ("as_of_date", "smo_id", "study_id", "site_id")
    finite = check_finite(planted, "site_enrollment", keys)
    assert {f.column: f.unexpected_count for f in finite} == {
        "cycle_ratio": 2,
        "screen_failure_rate": 1,
    }
    nan = next(f for f in finite if f.column == "screen_failure_rate")
    # a past week too: every published row, not only the latest week
    assert nan.examples == ["as_of_date=2026-11-09, smo_id=S, study_id=T, site_id=OLD: nan"]
    outcome = validate_mart(
        planted.execute("select * from site_enrollment").df(), RULES, None, finite
    )
    assert not outcome.success and not outcome.validator_errors
    summary = outcome.summary()
    assert summary.startswith("marts/site_enrollment: the data failed")
    assert "expect_column_values_to_be_finite on cycle_ratio" in summary
    assert "site_id=C: inf" in summary and "site_id=A: -inf" in summary
    rows = {r["check_name"] for r in outcome.gate_rows("run") if not r["success"]}
    assert "expect_column_values_to_be_finite(cycle_ratio)" in rows


def test_nulls_and_finite_numbers_pass_the_finite_rule(planted):
    planted.execute("update site_enrollment set screen_failure_rate = null where site_id = 'OLD'")
    planted.execute("update site_enrollment set cycle_ratio = 1e308 where cycle_ratio is not null")
    (finding,) = check_finite(planted, "site_enrollment", ("site_id",))
    assert finding.success and finding.observed.startswith("2 floating-point column(s)")


def test_the_marts_free_text_columns_are_the_feed_contracts():
    import yaml

    from core.settings import DBT_PROJECT_DIR
    from expectations.feeds import FREE_TEXT_COLUMNS

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    assert set(project["vars"]["free_text_columns"]) == FREE_TEXT_COLUMNS
    assert {"screen_fail_reason", "discontinuation_reason"} <= FREE_TEXT_COLUMNS


def test_what_bi_users_may_not_see_is_declared_in_the_mart_yaml(manifest):
    rules = mart_rules(manifest)
    log, changes = rules["delivery_log"], rules["retroactive_changes"]
    assert log.withheld == ("report_path",)
    assert log.published_source("marts.delivery_log") == (
        '(select * exclude ("report_path") from marts.delivery_log)'
    )
    assert log.quotes_cells == ("rejection_reasons",)
    assert changes.free_text_fields == {"new_value": "field", "old_value": "field"}
    assert rules["site_enrollment"].published_source("marts.x") == "marts.x"
    # the sponsor's action prose stays in the warehouse; its recorded outcome is published
    assert rules["oversight_actions"].withheld == ("action_text",)


LOG_RULES = MartRules(
    mart="delivery_log",
    keys=("delivery_id",),
    not_null=(),
    ranges={},
    entity=(),
    withheld=("report_path",),
    quotes_cells=("rejection_reasons",),
)
CHANGE_RULES = MartRules(
    mart="retroactive_changes",
    keys=(),
    not_null=(),
    ranges={},
    entity=(),
    free_text_fields={"old_value": "field", "new_value": "field"},
)


def _log(reason: str, report_path: str = "/srv/smo/quarantine/A/7.md", **extra) -> pd.DataFrame:
    return pd.DataFrame(
        [{"delivery_id": 7, "file_name": "A_Subjects_20261116.csv", "rejection_reasons": reason,
          "report_path": report_path, **extra}]
    )  # fmt: skip


def _failed(outcome) -> set[tuple[str, str | None]]:
    return {(f.expectation, f.column) for f in outcome.failures}


def test_a_withheld_path_passes_and_a_published_one_blocks():
    quoted = "date.order on randomized_date (1 row, first at row 5: 2026-13-01)"
    assert validate_mart(_log(quoted), LOG_RULES).success
    outcome = validate_mart(_log("file.unreadable (see /srv/smo/quarantine/A/7.md)"), LOG_RULES)
    assert _failed(outcome) == {("expect_no_absolute_paths", None)}
    assert outcome.failures[0].examples == ["rejection_reasons: file.unreadable (see "
                                            "/srv/smo/quarantine/A/7.md)"]  # fmt: skip
    unwithheld = MartRules(**{**LOG_RULES.__dict__, "withheld": ()})
    outcome = validate_mart(_log(quoted, report_path="C:\\smo\\q\\7.md"), unwithheld)
    assert _failed(outcome) == {("expect_no_absolute_paths", None)}


def test_a_quoted_free_text_cell_blocks_but_a_withheld_one_passes():
    fine = "value.too_long on screen_fail_reason (1 row, first at row 9, free text not quoted)"
    assert validate_mart(_log(fine), LOG_RULES).success
    quoted = "value.too_long on screen_fail_reason (1 row, first at row 9: HIV positive)"
    outcome = validate_mart(_log(quoted), LOG_RULES)
    assert _failed(outcome) == {("expect_no_quoted_free_text", "rejection_reasons")}
    assert "HIV" not in outcome.summary()


def test_a_free_text_subject_column_is_never_published():
    outcome = validate_mart(_log("rejected", discontinuation_reason="moved away"), LOG_RULES)
    assert _failed(outcome) == {("expect_no_free_text_columns", None)}
    assert outcome.failures[0].examples == ["discontinuation_reason"]


def test_retroactive_changes_of_a_free_text_field_are_published_without_values():
    changes = pd.DataFrame(
        {
            "field": ["randomized_date", "screen_fail_reason", None],
            "old_value": ["2026-05-01", None, None],
            "new_value": ["2026-05-03", None, None],
        }
    )
    assert validate_mart(changes, CHANGE_RULES).success
    changes.loc[1, "new_value"] = "HIV positive"
    outcome = validate_mart(changes, CHANGE_RULES)
    assert _failed(outcome) == {("expect_free_text_values_withheld", "new_value")}
    assert outcome.failures[0].examples == ["row 1: field=screen_fail_reason"]


# -- the gate as one Dagster step, through the real job -----------------------------------------


def _gate_job(selection: dg.AssetSelection) -> dg.JobDefinition:
    """The gate step and the BI publish, without rebuilding the marts (dbt would overwrite
    what a test broke)."""
    from orchestration.defs import publish as publish_defs
    from orchestration.lib.warehouse import DuckDBWarehouse

    defs = dg.Definitions(
        assets=[publish_defs.bi_oversight],
        asset_checks=[publish_defs.publish_gate],
        resources={"warehouse": DuckDBWarehouse()},
        jobs=[dg.define_asset_job("gate", selection=selection)],
    )
    return defs.resolve_job_def("gate")


@pytest.mark.integration
def test_a_refresh_runs_the_publish_gate_as_one_step_with_a_result_per_mart(
    refreshed_portfolio: Path, tmp_path: Path
):
    from dagster._core.instance.ref import InstanceRef

    from orchestration.defs.publish import MART_KEYS

    shutil.copytree(refreshed_portfolio / "dagster_home", tmp_path / "home")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "home"))) as instance:
        (run,) = instance.get_runs()
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    started = [e.step_key for e in events if e.event_type == dg.DagsterEventType.STEP_START]
    assert [s for s in started if "gate" in s or s.startswith("marts__")] == ["publish_gate"]
    assert len(started) < 10, started
    evaluations = [
        (e.step_key, e.asset_check_evaluation_data)
        for e in events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    gate_names = {"publish_gate", "smo_freshness", "stale_feeds", "unattended_signals"}
    assert {step for step, c in evaluations if c.check_name in gate_names} == {"publish_gate"}
    checks = {(c.asset_key, c.check_name): c for _, c in evaluations}
    assert len(MART_KEYS) > 20
    for key in MART_KEYS.values():
        gate = checks[(key, "publish_gate")]
        assert gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR, key
        assert gate.metadata["outcome"].value == "passed" and gate.metadata["expectations"].value
    assert checks[(MART_KEYS["deliveries_used"], "smo_freshness")].passed
    assert checks[(MART_KEYS["feed_freshness"], "stale_feeds")].severity.value == "WARN"
    assert (MART_KEYS["unattended_signals"], "unattended_signals") in checks
    with duckdb.connect(str(refreshed_portfolio / "warehouse.duckdb"), read_only=True) as con:
        targets = {
            t
            for (t,) in con.execute(
                "select distinct target from ops.gate_results where run_id = ? and gate = 'publish'",
                [run.run_id],
            ).fetchall()
        }
    assert targets == {key.to_user_string() for key in MART_KEYS.values()}


@pytest.mark.integration
def test_a_mart_the_gate_cannot_read_fails_its_own_check_and_every_other_is_reported(
    refreshed_env: Path, dagster_instance
):
    from orchestration.defs import publish as publish_defs

    published = refreshed_env / "publish" / "oversight.duckdb"
    before = published.read_bytes()
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb")) as con:
        con.execute("drop table marts.site_staffing")
    job = _gate_job(
        dg.AssetSelection.keys(publish_defs.PUBLISHED_KEY)
        | dg.AssetSelection.checks(publish_defs.publish_gate)
    )
    result = job.execute_in_process(instance=dagster_instance, raise_on_error=False)

    assert not result.success
    evaluations = result.get_asset_check_evaluations()
    gates = {e.asset_key.path[-1]: e for e in evaluations if e.check_name == "publish_gate"}
    assert set(gates) == set(publish_defs.MART_KEYS)
    assert {mart for mart, e in gates.items() if not e.passed} == {"site_staffing"}
    broken = gates["site_staffing"]
    assert broken.metadata["outcome"].value == "validator_error"
    assert "validator error: CatalogException" in broken.description
    assert "site_staffing" in broken.description and "Traceback" not in broken.description
    assert {e.check_name for e in evaluations} == {
        "publish_gate",
        "smo_freshness",
        "stale_feeds",
        "unattended_signals",
    }
    failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert [e.step_key for e in failures] == ["publish_gate"]
    assert "marts/site_staffing: publish_gate" in failures[0].step_failure_data.error.message
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert publish_defs.PUBLISHED_KEY not in materialized
    assert published.read_bytes() == before
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select check_name, success, json_extract_string(details, '$.validator_error') "
            "from ops.gate_results where run_id = ? and target = 'marts/site_staffing'",
            [result.run_id],
        ).fetchall()
    assert [(name, success) for name, success, _ in rows] == [("validation_ran", False)]
    assert rows[0][2].startswith("CatalogException: ")


@pytest.mark.integration
def test_a_run_of_some_marts_evaluates_only_their_checks(refreshed_env: Path, dagster_instance):
    from orchestration.defs.publish import MART_KEYS, publish_gate

    wanted = [
        dg.AssetCheckKey(MART_KEYS["site_payments"], "publish_gate"),
        dg.AssetCheckKey(MART_KEYS["feed_freshness"], "stale_feeds"),
    ]
    assert set(wanted) < set(publish_gate.check_keys)
    result = _gate_job(dg.AssetSelection.checks(*wanted)).execute_in_process(
        instance=dagster_instance
    )
    evaluations = result.get_asset_check_evaluations()
    assert sorted((e.asset_key, e.check_name) for e in evaluations) == sorted(
        (k.asset_key, k.name) for k in wanted
    )
    assert all(e.passed for e in evaluations)
