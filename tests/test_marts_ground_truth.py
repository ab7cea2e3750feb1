"""The marts find what the generator planted in the demo portfolio, and nothing else.

One refresh of the demo-scale portfolio (4 SMOs, 60 sites, 8 weekly deliveries) through the real
Dagster job; every test reads the resulting warehouse.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from synthetic.portfolio import PLANTED_ROLE_KRI
from tests.conftest import refresh_folder
from tests.test_non_finite import non_finite_cells

pytestmark = pytest.mark.integration

DIVERSITY_PLANS = Path(__file__).parents[1] / "dbt_project" / "seeds" / "diversity_plans.csv"

#: The KRI a planted site behaviour must turn red (declared once, beside the planted roles).
EXPECTED_RED_KRI = PLANTED_ROLE_KRI


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's folder: data/, warehouse.duckdb, publish/ (filled by `demo`)."""
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def demo(demo_root: Path) -> Iterator[tuple[duckdb.DuckDBPyConnection, dict]]:
    from synthetic.generate import generate

    root = demo_root
    truth = generate(root / "data", scale="demo", weeks=8, seed=7)
    refresh_folder(root, "the refresh of the demo portfolio")
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        yield con, truth


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_red_site_flags_are_exactly_the_planted_sites(demo):
    con, truth = demo
    planted = {
        (p["smo_id"], p["study_id"], p["site_id"]): p["role"] for p in truth["planted_sites"]
    }
    red = _rows(
        con,
        """
        select smo_id, study_id, site_id, kri_id from marts.site_flags
        where comparison_group = 'study' and flag = 'red'
          and as_of_date = (select max(as_of_date) from marts.site_flags)
        """,
    )
    red_sites = {(smo, study, site) for smo, study, site, _ in red}
    assert red_sites == set(planted)
    red_kris = {(smo, study, site, kri) for smo, study, site, kri in red}
    for site, role in planted.items():
        assert (*site, EXPECTED_RED_KRI[role]) in red_kris, f"{site} ({role})"


def test_risk_scores_rank_the_planted_sites_first(demo):
    con, truth = demo
    planted = {(p["smo_id"], p["study_id"], p["site_id"]) for p in truth["planted_sites"]}
    ranked = _rows(
        con,
        """
        select smo_id, study_id, site_id from marts.site_risk_scores
        where as_of_date = (select max(as_of_date) from marts.site_risk_scores)
        order by risk_score desc, red_flags desc
        """,
    )
    assert set(ranked[: len(planted)]) == planted
    levels = dict(
        _rows(
            con,
            """
            select risk_level, count(*) from marts.site_risk_scores
            where as_of_date = (select max(as_of_date) from marts.site_risk_scores)
            group by 1
            """,
        )
    )
    assert levels["red"] == len(planted)


def test_scorecard_marks_exactly_the_late_paying_smo_red(demo):
    con, truth = demo
    latest = "(select max(as_of_date) from marts.smo_scorecard)"
    red = {
        smo
        for (smo,) in _rows(
            con, f"select distinct smo_id from marts.smo_scorecard "
            f"where overall_rag = 'red' and as_of_date = {latest}"
        )
    }  # fmt: skip
    assert red == set(truth["late_paying_smos"])
    payment_red = {
        smo
        for (smo,) in _rows(
            con,
            f"select distinct smo_id from marts.smo_scorecard where rag = 'red' and "
            f"kpi_id in ('payment_cycle_days', 'paid_within_terms_share') and as_of_date = {latest}",
        )
    }
    assert payment_red == set(truth["late_paying_smos"])


def test_retroactive_changes_are_exactly_the_planted_edits(demo):
    con, truth = demo
    found = _rows(
        con,
        """
        select c.smo_id, c.study_id, c.site_id, c.feed, c.record_key, c.change_kind, c.field,
               c.old_value, c.new_value, c.previous_delivery_date, c.delivery_date
        from marts.retroactive_changes as c
        """,
    )
    kinds = {
        "subject_field_changed": ("subjects", "changed"),
        "deviation_deleted": ("deviations", "deleted"),
        "deviation_downgraded": ("deviations", "changed"),
    }
    expected = set()
    for edit in truth["retroactive_edits"]:
        feed, kind = kinds[edit["kind"]]
        key = f"{edit['site_id']}|{edit['key']}" if feed == "subjects" else edit["key"]
        expected.add(
            (edit["smo_id"], edit["study_id"], edit["site_id"], feed, key, kind, edit["field"],
             edit["old"], edit["new"], edit["previous_delivery_date"],
             edit["changed_in_delivery_date"])
        )  # fmt: skip
    assert {(*row[:9], str(row[9]), str(row[10])) for row in found} == expected


def test_registry_hygiene_finds_the_planted_gaps(demo):
    con, truth = demo
    registry = truth["registry"]
    active = {
        (smo, study, site)
        for smo, study, site in _rows(
            con,
            "select smo_id, study_id, site_id from staging.stg_smo__sites "
            "where status in ('ACTIVATED', 'ENROLLING')",
        )
    }
    planted_missing = {
        (s["smo_id"], s["study_id"], s["site_id"])
        for s in registry["roster_sites_missing_from_registry"]
    }
    missing = {
        tuple(r)
        for r in _rows(
            con,
            "select smo_id, study_id, site_id from marts.registry_hygiene "
            "where finding = 'site_missing_from_registry'",
        )
    }
    assert missing == planted_missing & active
    assert missing, "the demo plants missing sites among active ones"
    stale = {n for (n,) in _rows(con, "select nct_id from marts.registry_hygiene "
                                      "where finding = 'registry_record_stale'")}  # fmt: skip
    assert stale == set(registry["stale_registry_studies"])


def test_planted_red_sites_have_an_open_flag_episode_from_their_first_flagged_week(demo):
    """Each planted site's red KRI is an open episode this week, new or persisting, that started
    the first week of its current run of amber/red weeks in site_flags (walked here in Python,
    skipping weeks the KRI was not evaluated), with its age in calendar weeks."""
    con, truth = demo
    latest = _rows(con, "select max(as_of_date) from marts.site_flags")[0][0]
    for p in truth["planted_sites"]:
        kri = EXPECTED_RED_KRI[p["role"]]
        key = (p["smo_id"], p["study_id"], p["site_id"], kri)
        weeks = con.execute(
            "select as_of_date, flag from marts.site_flags where comparison_group = 'study' "
            "and smo_id = ? and study_id = ? and site_id = ? and kri_id = ? "
            "and flag in ('green', 'amber', 'red') order by as_of_date desc",
            list(key),
        ).fetchall()
        first = None
        for week, flag in weeks:
            if flag not in ("amber", "red"):
                break
            first = week
        assert first is not None, key
        episode = con.execute(
            "select first_flagged_week, status, status_this_week, age_weeks, peak_severity "
            "from marts.flag_episodes where comparison_group = 'study' and smo_id = ? "
            "and study_id = ? and site_id = ? and kri_id = ? and status = 'open'",
            list(key),
        ).fetchall()
        monday = lambda d: d - timedelta(days=d.weekday())  # noqa: E731
        age = (monday(latest) - monday(first)).days // 7 + 1
        expected_status = "new" if first == latest else "persisting"
        assert episode == [(first, "open", expected_status, age, "red")], key


def test_weekly_history_has_every_delivery_week_and_lineage(demo):
    con, truth = demo
    weeks = [str(d) for (d,) in _rows(con, "select distinct as_of_date from "
                                          "marts.kpi_weekly_history order by 1")]  # fmt: skip
    assert weeks == truth["delivery_dates"]
    untraced = _rows(
        con,
        """
        select count(*) from marts.kpi_weekly_history as h
        where h.level = 'site' and not exists (
            select 1 from marts.deliveries_used as d
            where d.as_of_date = h.as_of_date and d.smo_id = h.smo_id
              and d.study_id = h.study_id and d.feed = 'subjects'
        )
        """,
    )[0][0]
    assert untraced == 0
    versions = _rows(con, "select distinct kri_version from marts.site_flags")
    assert versions == _rows(con, "select distinct version from reference.kri_definitions")


def test_forecast_covers_every_study(demo):
    con, truth = demo
    rows = _rows(
        con,
        "select study_id, target_date_p10, target_date_p50, target_date_p90, "
        "randomized_to_date from marts.enrollment_forecast order by 1",
    )
    assert [r[0] for r in rows] == [s["study_id"] for s in truth["studies"]]
    for study, p10, p50, p90, randomized in rows:
        assert randomized > 0, study
        assert p10 is not None and p10 <= p50 <= (p90 or p50), study
    fan = _rows(
        con,
        "select study_id, min(randomized_p10), max(randomized_p90), count(*) "
        "from marts.enrollment_forecast_path where weeks_ahead = 0 group by 1 order by 1",
    )
    assert [(s, lo, hi) for s, lo, hi, _ in fan] == [(r[0], r[4], r[4]) for r in rows]


def test_the_planted_bad_delivery_is_rejected_with_its_reason_and_the_feed_keeps_its_data(demo):
    con, truth = demo
    [planted] = truth["rejected_deliveries"]
    rejected = _rows(
        con,
        "select smo_id, feed, file_name, delivery_date::varchar, rejection_reasons "
        "from marts.delivery_log where status = 'REJECTED'",
    )
    assert [r[:4] for r in rejected] == [
        (planted["smo_id"], planted["feed"], planted["file_name"], planted["delivery_date"])
    ]
    reason = rejected[0][4]
    assert reason.startswith(f"{planted['rule']} (1 row, first at row ")
    assert f"amount={planted['value']}" in reason
    # In the week of the rejected file the feed still has last week's data: 7 days old, one
    # rejection since, not yet stale (8 days); by the next week a new file replaced it.
    weeks = truth["delivery_dates"]
    freshness = _rows(
        con,
        f"""
        select as_of_date::varchar, last_accepted_delivery_date::varchar, age_days,
               rejected_since_last_accepted, is_stale
        from marts.feed_freshness
        where smo_id = '{planted["smo_id"]}' and feed = '{planted["feed"]}'
          and as_of_date::varchar in ('{weeks[1]}', '{weeks[2]}')
        order by 1
        """,
    )
    assert freshness == [
        (weeks[1], weeks[0], 7, 1, False),
        (weeks[2], weeks[2], 0, 0, False),
    ]
    stale = _rows(con, "select count(*) from marts.feed_freshness where is_stale")[0][0]
    assert stale == 0


def test_no_mart_published_from_the_demo_holds_nan_or_infinity(demo):
    con, _ = demo
    (warehouse,) = con.execute(
        "select path from duckdb_databases() where database_name = current_database()"
    ).fetchone()
    checked, found = non_finite_cells(Path(warehouse).parent / "publish" / "oversight.duckdb")
    assert checked > 50
    assert found == []


def test_the_planted_unattended_flag_is_unattended_and_acted_on_flags_are_attended(demo):
    """The sponsor's actions list (synthetic/actions.py): the planted flag nobody acted on is
    unattended this week, every planted action attends its flag from the day it was opened, the
    planted overdue action is overdue, and QTL evaluations come from the QTL actions."""
    con, truth = demo
    planted = truth["oversight_actions"]
    latest = _rows(con, "select max(as_of_date) from marts.unattended_signals")[0][0]

    def states(smo, study, site, kri):
        return con.execute(
            "select state, first_action_id, first_action_opened from marts.unattended_signals "
            "where as_of_date = ? and signal_type = 'SITE_FLAG' and is_open "
            "and smo_id = ? and study_id = ? and site_id = ? and kri_id = ?",
            [latest, smo, study, site, kri],
        ).fetchall()

    u = planted["unattended_flag"]
    assert states(u["smo_id"], u["study_id"], u["site_id"], u["kri_id"]) == [
        ("unattended", None, None)
    ]
    for a in planted["attended_flags"]:
        opened = date.fromisoformat(a["opened_date"])
        found = states(a["smo_id"], a["study_id"], a["site_id"], a["kri_id"])
        assert found == [("attended", a["action_id"], opened)], a
    assert _rows(con, "select action_id, status from marts.oversight_actions where is_overdue") == [
        (planted["overdue_action_id"], "OPEN")
    ]
    for q in planted["qtl_actions"]:
        rows = con.execute(
            "select evaluation_action_id from marts.study_qtls where as_of_date = ? "
            "and study_id = ? and qtl_id = ? and is_exceeded",
            [latest, q["study_id"], q["qtl_id"]],
        ).fetchall()
        assert rows == [(q["action_id"],)], q
    # the sender is never an SMO
    for mart in ("smo_scorecard", "feed_freshness", "deliveries_used", "site_flags"):
        assert _rows(con, f"select count(*) from marts.{mart} where smo_id = 'SPONSOR'") == [
            (0,)
        ], mart


def test_the_report_asks_for_the_planted_unattended_flag_and_overdue_action(demo, demo_root):
    """The report's needs-attention list (rendered from the demo's published file) names the
    planted unattended flag and the planted overdue action, and as many unattended signals as
    the published mart has this week."""
    from publishing.report import REPORT_NAME

    con, truth = demo
    planted = truth["oversight_actions"]
    html = (demo_root / "publish" / REPORT_NAME).read_text(encoding="utf-8")
    items = re.findall(r'<li data-attention="([a-z-]+)">(.*?)</li>', html)
    unattended = [text for kind, text in items if kind == "unattended"]
    (count,) = _rows(
        con,
        "select count(*) from marts.unattended_signals where state = 'unattended' and is_open "
        "and as_of_date = (select max(as_of_date) from marts.unattended_signals)",
    )[0]
    assert len(unattended) == count
    u = planted["unattended_flag"]
    assert any(text.startswith(f"Unattended: {u['site_id']} ({u['smo_id']}, {u['study_id']})")
               for text in unattended), unattended  # fmt: skip
    overdue = [text for kind, text in items if kind == "overdue-action"]
    assert [t.split()[2] for t in overdue] == [planted["overdue_action_id"]]


def _latest_representativeness(con, where: str, params: list) -> list[tuple]:
    return con.execute(
        "select * from marts.enrollment_representativeness where as_of_date = "
        f"(select max(as_of_date) from marts.enrollment_representativeness) and {where}",
        params,
    ).fetchall()


def test_representativeness_flags_exactly_the_planted_smo_on_its_dimension(demo):
    """The one SMO planted enrolling too few women (synthetic/demographics.py) is the only unit
    below a plan minimum this week, with the generator's own counts, its plan id and version,
    and the KRI version; every other evaluated SMO is green."""
    con, truth = demo
    (planted,) = truth["planted_representativeness"]
    red = con.execute(
        "select level, study_id, smo_id, dimension, group_code, randomized_in_group, "
        "randomized_with_dimension, plan_id, plan_version, kri_id, kri_version "
        "from marts.enrollment_representativeness where flag = 'red' and level in ('study', 'smo') "
        "and as_of_date = (select max(as_of_date) from marts.enrollment_representativeness)"
    ).fetchall()
    plan = {
        (r["study_id"], r["dimension"], r["group_code"]): r
        for r in csv.DictReader(DIVERSITY_PLANS.open(encoding="utf-8"))
    }[(planted["study_id"], planted["dimension"], planted["group_code"])]
    (kri_version,) = _rows(
        con, "select version from reference.kri_definitions where kri_id = 'group_share_below_minimum' "
        "and level = 'smo'"
    )[0]  # fmt: skip
    assert red == [
        (
            "smo",
            planted["study_id"],
            planted["smo_id"],
            planted["dimension"],
            planted["group_code"],
            planted["randomized_in_group"],
            planted["randomized"],
            plan["plan_id"],
            plan["plan_version"],
            "group_share_below_minimum",
            kri_version,
        )
    ]
    evaluated = _rows(
        con,
        "select count(*), count(*) filter (where plan_id is null or plan_version is null "
        "or kri_version is null) from marts.enrollment_representativeness "
        "where flag in ('red', 'amber', 'green')",
    )[0]
    assert evaluated[0] > 0 and evaluated[1] == 0


def _plan_band(study_id: str, age: int) -> str | None:
    for row in csv.DictReader(DIVERSITY_PLANS.open(encoding="utf-8")):
        if row["study_id"] == study_id and row["dimension"] == "age_group":
            high = int(row["age_max"]) if row["age_max"] else 10**6
            if int(row["age_min"]) <= age <= high:
                return row["group_code"]
    return None


def _band_bounds(band: str) -> tuple[int, int]:
    low, _, high = band.rstrip("+").partition("-")
    return int(low), int(high) if high else 10**6


def test_representativeness_shares_equal_a_count_of_the_raw_subjects(demo):
    """Per SMO within each study, the published sex and age-group cells equal a count of the
    accepted raw subject rows randomized by the as-of date (age bands from the plan seed, a
    delivered band inside one plan band); an SMO that delivered no race column has no data,
    never 0."""
    con, _ = demo
    (as_of,) = _rows(con, "select max(as_of_date) from marts.enrollment_representativeness")[0]
    raw = con.execute(
        "select s.smo_id, s.study_id, s.sex, s.age, s.age_group from raw.subjects as s "
        "join ops.deliveries as d on d.delivery_id = s._delivery_id and d.status = 'ACCEPTED' "
        "where s.randomized_date <= ?",
        [as_of],
    ).fetchall()
    expected: dict[tuple, int] = {}
    totals: dict[tuple, int] = {}
    for smo, study, sex, age, age_group in raw:
        if age is not None:
            band = _plan_band(study, age)
        elif age_group is not None:
            low, high = _band_bounds(age_group)
            inside = {_plan_band(study, low), _plan_band(study, high if high < 10**6 else low)}
            band = inside.pop() if len(inside) == 1 else None
        else:
            band = None
        for dimension, group in (("sex", sex), ("age_group", band)):
            totals[(smo, study, dimension)] = totals.get((smo, study, dimension), 0) + 1
            key = (smo, study, dimension, group or "NOT IN PLAN")
            expected[key] = expected.get(key, 0) + 1
    published = con.execute(
        "select smo_id, study_id, dimension, group_code, randomized_in_group, "
        "randomized_with_dimension, suppressed from marts.enrollment_representativeness "
        "where level = 'smo' and dimension in ('sex', 'age_group') and as_of_date = ?",
        [as_of],
    ).fetchall()
    assert published
    for smo, study, dimension, group, cell, denominator, suppressed in published:
        assert denominator == totals[(smo, study, dimension)], (smo, study, dimension)
        if not suppressed:
            assert cell == expected.get((smo, study, dimension, group), 0), (smo, study, group)
        else:
            assert cell is None
    # NORDIC files carry no race column: no data with the reason, never a 0 share
    nordic = _latest_representativeness(con, "smo_id = ? and dimension = 'race'", ["SMO-NORDIC"])
    assert nordic
    for row in con.execute(
        "select share, randomized_in_group, flag, no_data_reason "
        "from marts.enrollment_representativeness where smo_id = 'SMO-NORDIC' "
        "and dimension = 'race' and as_of_date = ?",
        [as_of],
    ).fetchall():
        assert row == (None, None, "no_data", "no race column delivered")


def test_the_report_names_the_smo_below_its_diversity_plan(demo, demo_root):
    from publishing.report import REPORT_NAME

    _, truth = demo
    (planted,) = truth["planted_representativeness"]
    html = (demo_root / "publish" / REPORT_NAME).read_text(encoding="utf-8")
    items = re.findall(r'<li data-attention="([a-z-]+)">(.*?)</li>', html)
    below = [text for kind, text in items if kind == "representativeness"]
    assert len(below) == 1, items
    assert f"{planted['study_id']}, {planted['smo_id']}: sex F" in below[0]
