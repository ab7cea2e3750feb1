"""The CDISC pilot (CDISCPILOT01, SDTM) end to end: its dm/ds/sv.xpt dropped into the inbox
beside the synthetic SMOs' deliveries, the real refresh (Dagster, dbt, publish), and what the
published marts say about it, computed again here from the .xpt files themselves."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from core.settings import PROJECT_ROOT
from orchestration.demo import refresh_job

pytestmark = pytest.mark.integration

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "cdiscpilot01.yaml"
PLANS = PROJECT_ROOT / "dbt_project" / "seeds" / "diversity_plans.csv"
PILOT = "SMO-PILOT"
#: Published marts whose synthetic-SMO rows must not change because the pilot is there. What
#: does change, rightly, are the rows that include the pilot: site_flags' portfolio comparison
#: (all sites of all SMOs) and kpi_weekly_history's portfolio and US rollups.
UNCHANGED = {
    "site_enrollment": "smo_id <> 'SMO-PILOT'",
    "study_enrollment": "study_id <> 'CDISCPILOT01'",
    "site_flags": "smo_id <> 'SMO-PILOT' and comparison_group = 'study'",
    "site_deviations": "smo_id <> 'SMO-PILOT'",
    "smo_scorecard": "smo_id <> 'SMO-PILOT'",
    "kpi_weekly_history": "level <> 'portfolio' and not (level = 'country' and country = 'US') "
    "and smo_id is distinct from 'SMO-PILOT' and study_id is distinct from 'CDISCPILOT01'",
}


def _published(root: Path, table: str, where: str) -> pd.DataFrame:
    with duckdb.connect(str(root / "publish" / "oversight.duckdb"), read_only=True) as con:
        frame = con.sql(f"select * from {table} where {where}").df()
    # Delivery ids are lineage, not content: the pilot's deliveries take ids in the sequence.
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith("delivery_id")])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_the_pilot_refreshes_beside_the_synthetic_smos(
    project_env, data_dir, dagster_instance, refreshed_portfolio, shared_data
):
    pilot = shared_data / "sdtm" / "cdiscpilot01"
    if not pilot.is_dir():
        pytest.skip(f"the CDISC pilot's SDTM domains are not at {pilot}")
    shutil.copy(EXAMPLE, data_dir / "profiles" / f"{PILOT}.yaml")
    inbox = data_dir / "inbox" / PILOT
    inbox.mkdir()
    # It arrives with the synthetic SMOs' latest deliveries (their files are dated 06:00 UTC
    # of their delivery date): the pilot names no date, so the day it arrived is its date.
    latest = max(json.loads((data_dir / "ground_truth.json").read_text())["delivery_dates"])
    arrived = dt.datetime.combine(dt.date.fromisoformat(latest), dt.time(6), dt.UTC).timestamp()
    for domain in ("dm", "ds", "sv"):
        shutil.copy(pilot / f"{domain}.xpt", inbox / f"{domain}.xpt")
        os.utime(inbox / f"{domain}.xpt", (arrived, arrived))

    result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)
    assert result.success
    assert all(
        c.passed for c in result.get_asset_check_evaluations() if c.severity.value == "ERROR"
    )
    assert not any(inbox.iterdir()), "the pilot's files left the inbox"

    dm = pd.read_sas(pilot / "dm.xpt", format="xport", encoding="latin-1")
    per_site = dm.groupby("SITEID").USUBJID.nunique().to_dict()
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.execute(
            "select feed, status, file_name, delivery_date from ops.deliveries "
            "where smo_id = ? order by feed",
            [PILOT],
        ).fetchall()
    assert ledger == [
        (feed, "ACCEPTED", "dm.xpt+ds.xpt+sv.xpt", dt.date.fromisoformat(latest))
        for feed in ("sites", "subjects", "visits")
    ]

    published = project_env / "publish" / "oversight.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        (run_id,) = con.execute("select dagster_run_id from meta").fetchone()
        enrollment = con.execute(
            "select site_id, subjects_screened, study_id, as_of_date from site_enrollment "
            "where smo_id = ?",
            [PILOT],
        ).fetchall()
        flagged = con.execute(
            "select distinct site_id from site_flags where smo_id = ? and comparison_group = 'study'",
            [PILOT],
        ).fetchall()
        kris = con.execute(
            "select count(distinct kri_id) filter (where smo_id = ?), count(distinct kri_id) "
            "from site_flags where comparison_group = 'study'",
            [PILOT],
        ).fetchone()
    assert run_id == result.run_id, "this run published"
    assert {site: n for site, n, _, _ in enrollment} == per_site
    assert {(study, day) for _, _, study, day in enrollment} == {
        ("CDISCPILOT01", dt.date.fromisoformat(latest))
    }
    assert {site for (site,) in flagged} == set(per_site)
    assert kris[0] == kris[1], "the pilot's sites are evaluated on every site KRI, like any other"

    for table, where in UNCHANGED.items():
        without = _published(refreshed_portfolio, table, where)
        with_pilot = _published(project_env, table, where)
        assert len(with_pilot) == len(without) > 0, table
        pd.testing.assert_frame_equal(with_pilot, without, check_dtype=False, obj=table)
    _assert_representativeness(project_env / "warehouse.duckdb", published)


def _expected_groups(plan: list[dict], sex, age, race, ethnic) -> dict[str, str]:
    """dimension -> plan group of one subject, from the plan seed (independent of the dbt model)."""
    value = {"sex": sex, "race": race, "ethnicity": ethnic}
    groups = {}
    for dimension in ("sex", "age_group", "race", "ethnicity"):
        rows = [r for r in plan if r["dimension"] == dimension]
        if dimension == "age_group":
            hit = [
                r["group_code"]
                for r in rows
                if age is not None
                and int(r["age_min"]) <= age
                and (not r["age_max"] or age <= int(r["age_max"]))
            ]
        else:
            hit = [r["group_code"] for r in rows if r["group_code"] == value[dimension]]
        groups[dimension] = hit[0] if hit else "NOT IN PLAN"
    return groups


def _assert_representativeness(warehouse: Path, published: Path) -> None:
    """Issue 21 on the pilot: DM's SEX, AGE, RACE and ETHNIC (CDISC terms) give study-level
    shares equal to a computation over raw.subjects' randomized subjects and the plan seed; the
    flags follow the plan's minimums; every row names the plan and its version; no published
    table carries subject-level demographics."""
    with open(PLANS, newline="", encoding="utf-8") as handle:
        plan = [r for r in csv.DictReader(handle) if r["study_id"] == "CDISCPILOT01"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        subjects = con.execute(
            "select sex, age, race, ethnic from raw.subjects "
            "where smo_id = ? and randomized_date is not null",
            [PILOT],
        ).fetchall()
    counts: dict[tuple[str, str], int] = {}
    for subject in subjects:
        for dimension, group in _expected_groups(plan, *subject).items():
            counts[dimension, group] = counts.get((dimension, group), 0) + 1
    total = len(subjects)
    assert total > 200 and {sex for sex, *_ in subjects} == {"F", "M"}
    with duckdb.connect(str(published), read_only=True) as con:
        rows = con.execute(
            "select dimension, group_code, randomized_with_dimension, randomized_in_group, share, "
            "suppressed, flag, minimum_share, plan_id, plan_version from enrollment_representativeness "
            "where study_id = 'CDISCPILOT01' and level = 'study' "
            "and as_of_date = (select max(as_of_date) from enrollment_representativeness)"
        ).fetchall()
        unplanned = con.execute(
            "select count(*) from enrollment_representativeness where study_id = 'CDISCPILOT01' "
            "and (plan_id is distinct from ? or plan_version is distinct from ?)",
            [plan[0]["plan_id"], plan[0]["plan_version"]],
        ).fetchone()[0]
        demographic_columns = con.execute(
            "select table_name, column_name from information_schema.columns where column_name "
            "in ('subject_id', 'sex', 'age', 'age_group', 'race', 'ethnic')"
        ).fetchall()
    expected_groups = {(r["dimension"], r["group_code"]) for r in plan} | {
        (d, "NOT IN PLAN") for d in ("sex", "age_group", "race", "ethnicity")
    }
    assert {(d, g) for d, g, *_ in rows} == expected_groups
    published_shares = 0
    for dimension, group, denominator, cell, share, suppressed, flag, minimum, *_ in rows:
        n = counts.get((dimension, group), 0)
        assert denominator == total, (dimension, group)
        if suppressed:
            assert cell is None and share is None
        else:
            assert cell == n and share == pytest.approx(n / total), (dimension, group)
            published_shares += 1
        red = minimum is not None and n / total < minimum  # total >= 20
        expected_flag = "not_evaluated" if minimum is None else ("red" if red else "green")
        assert flag == expected_flag, (dimension, group)
    # the pilot's one American Indian subject is a cell under 5: suppressed with its complement
    for dimension in ("sex", "age_group", "race", "ethnicity"):
        small = sum(1 for (d, _), n in counts.items() if d == dimension and 0 < n < 5)
        hidden = sum(1 for r in rows if r[0] == dimension and r[5])
        assert hidden == small + (small == 1), dimension
    assert any(r[5] for r in rows if r[0] == "race")
    assert published_shares >= 10 and unplanned == 0
    assert demographic_columns == [], "subject-level demographics are never published"
