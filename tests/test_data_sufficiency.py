"""No data is never green (spec 3.1): a KPI whose input an SMO did not deliver is NULL with a
reason in every mart, raises no flag, adds nothing to a risk score, and a contracted feed that is
missing makes the SMO incomplete.

The integration tests run the real refresh on a small generated portfolio in which SMO-NORDIC
delivers no deviations feed (it is contracted for one) and SMO-IBERIA's visits export has no
data-entry date column; SMO-SAKURA delivers no payments and SMO-NORDIC no staffing, neither
contracted, as in the demo.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from core.settings import PROJECT_ROOT
from expectations.feeds import FEEDS, SMO_FEEDS
from synthetic.generate import DEFAULT_END, generate
from synthetic.portfolio import Scale, build_portfolio
from tests.conftest import refresh_folder

CONTRACTS = PROJECT_ROOT / "dbt_project" / "seeds" / "smo_feed_contracts.csv"
REQUIRED_INPUTS = PROJECT_ROOT / "dbt_project" / "seeds" / "kpi_required_inputs.csv"

NO_DEVIATIONS, NO_ENTRY_DATES = "SMO-NORDIC", "SMO-IBERIA"
WITHHELD = {NO_DEVIATIONS: ["deviations"], NO_ENTRY_DATES: ["visits.crf_entry_date"]}
DEVIATION_KPIS = ("deviations_per_visit", "important_deviation_rate", "important_deviation_share")
ENTRY_KPIS = ("entry_lag_mean_days", "entry_lag_over_10d_share")


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# -- the seeds --------------------------------------------------------------------------------


def test_the_contract_seed_matches_what_the_demo_generator_delivers():
    portfolio = build_portfolio(7, Scale.named("demo"), 8, DEFAULT_END)
    expected = {
        (smo_id, study.study_id, feed): feed in portfolio.smo(smo_id).feeds
        for study in portfolio.studies
        for smo_id in study.smo_ids
        for feed in SMO_FEEDS  # the sponsor's own feed is no SMO's contract
    }
    seeded = {
        (r["smo_id"], r["study_id"], r["feed"]): r["contracted"] == "true" for r in _csv(CONTRACTS)
    }
    assert seeded == expected


def test_every_kpi_input_names_a_canonical_feed_and_column():
    for row in _csv(REQUIRED_INPUTS):
        feed = FEEDS[row["feed"]]
        if row["column_name"]:
            assert not feed.column(row["column_name"]).required, row  # required = always there
            assert row["missing_reason"].startswith("no "), row


def test_withheld_feeds_and_columns_leave_the_files_and_the_profile():
    portfolio = build_portfolio(11, Scale.named(0.25), 3, DEFAULT_END, WITHHELD)
    nordic, iberia = portfolio.smo(NO_DEVIATIONS), portfolio.smo(NO_ENTRY_DATES)
    assert "deviations" not in nordic.feeds and "visits" in nordic.feeds
    assert "crf_entry_date" not in iberia.dialect.feeds["visits"].headers
    profile = iberia.dialect.profile(NO_ENTRY_DATES)
    assert "crf_entry_date" not in profile["feeds"]["visits"]["columns"].values()
    assert "deviations" not in nordic.dialect.profile(NO_DEVIATIONS)["feeds"]
    with pytest.raises(ValueError, match="not an optional column"):
        build_portfolio(11, Scale.named(0.25), 3, DEFAULT_END, {"SMO-IBERIA": ["visits.status"]})


# -- the refreshed warehouse ------------------------------------------------------------------


@pytest.fixture(scope="module")
def warehouse(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    root = tmp_path_factory.mktemp("sufficiency")
    generate(root / "data", scale=0.25, weeks=3, seed=11, withheld=WITHHELD)
    refresh_folder(root, "the refresh with withheld feeds")
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        yield con, root / "publish"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


@pytest.mark.integration
def test_site_kpis_without_their_feed_are_null_with_the_reason_not_zero(warehouse):
    con, _ = warehouse
    rows = _rows(
        con,
        "select smo_id, deviations, deviations_per_visit, important_deviation_rate, "
        "important_deviation_share, no_data_reason from marts.site_deviations",
    )
    nordic = [r for r in rows if r[0] == NO_DEVIATIONS]
    others = [r for r in rows if r[0] != NO_DEVIATIONS]
    assert nordic and all(r[1:5] == (None,) * 4 for r in nordic)
    assert {r[5] for r in nordic} == {"no accepted deviations delivery"}
    assert any(r[2] is not None for r in others) and {r[5] for r in others} == {None}


@pytest.mark.integration
def test_timeliness_without_entry_dates_is_null_not_every_visit_late(warehouse):
    con, _ = warehouse
    rows = _rows(
        con,
        "select smo_id, visits_completed, visits_entered_late, entry_lag_mean_days, "
        "entry_lag_over_10d_share, no_data_reason from marts.site_data_timeliness",
    )
    iberia = [r for r in rows if r[0] == NO_ENTRY_DATES]
    assert iberia and all(r[2:5] == (None, None, None) for r in iberia)
    assert {r[5] for r in iberia} == {"no data-entry dates"}
    assert sum(r[1] for r in iberia) > 0, "the visits themselves were delivered"
    assert any(r[4] is not None for r in rows if r[0] != NO_ENTRY_DATES)


@pytest.mark.integration
def test_payments_and_staffing_of_smos_without_the_feed_have_rows_with_a_reason(warehouse):
    con, _ = warehouse
    payments = _rows(
        con,
        "select payment_lines, payment_cycle_days, amount_unpaid, no_data_reason "
        "from marts.site_payments where smo_id = 'SMO-SAKURA'",
    )
    assert payments and {r for r in payments} == {(None, None, None, "no payments feed")}
    staffing = _rows(
        con,
        "select active_crcs, has_no_backup_crc, crc_turnover, no_data_reason "
        "from marts.site_staffing where smo_id = 'SMO-NORDIC'",
    )
    assert staffing and {r for r in staffing} == {(None, None, None, "no staffing feed")}


@pytest.mark.integration
def test_rollups_and_history_carry_the_reason(warehouse):
    con, _ = warehouse
    rows = _rows(
        con,
        "select smo_id, kpi_id, value, numerator, no_data_reason from marts.kpi_weekly_history "
        "where level = 'smo' and kpi_id in ('deviations_per_visit', 'entry_lag_over_10d_share')",
    )
    assert rows
    for smo, kpi, value, numerator, reason in rows:
        missing = (smo, kpi) in {
            (NO_DEVIATIONS, "deviations_per_visit"),
            (NO_ENTRY_DATES, "entry_lag_over_10d_share"),
        }
        assert (value is None and numerator is None) == missing, (smo, kpi, value)
        assert (reason is not None) == missing, (smo, kpi, reason)
    # a study shared with an SMO that delivered is the ratio of the sites that have data
    (study_value, from_sites) = _rows(
        con,
        "select value, sites_without_data from marts.kpi_weekly_history where level = 'study' "
        "and study_id = 'SYN-002' and kpi_id = 'deviations_per_visit' "
        "and as_of_date = (select max(as_of_date) from marts.kpi_weekly_history)",
    )[0]
    assert study_value is not None and from_sites > 0


@pytest.mark.integration
def test_scorecard_is_never_green_on_missing_contracted_data(warehouse):
    con, _ = warehouse
    latest = "as_of_date = (select max(as_of_date) from marts.smo_scorecard)"
    overall = dict(
        _rows(
            con,
            f"select distinct smo_id, overall_rag || coalesce(': ' || incomplete_reason, '') "
            f"from marts.smo_scorecard where {latest}",
        )
    )
    assert overall[NO_DEVIATIONS] == "incomplete: no accepted deviations delivery"
    assert overall[NO_ENTRY_DATES] == "incomplete: no data-entry dates"
    assert not overall["SMO-SAKURA"].startswith("incomplete"), "payments are not contracted"
    cells = {
        (smo, kpi): (rag, reason)
        for smo, kpi, rag, reason in _rows(
            con,
            f"select smo_id, kpi_id, rag, no_data_reason from marts.smo_scorecard where {latest}",
        )
    }
    assert cells[(NO_DEVIATIONS, "deviations_per_visit")] == (
        "no_data",
        "no accepted deviations delivery",
    )
    assert cells[(NO_ENTRY_DATES, "entry_lag_mean_days")] == ("no_data", "no data-entry dates")
    assert cells[("SMO-SAKURA", "payment_cycle_days")] == ("no_data", "no payments feed")
    assert all(rag != "green" for rag, reason in cells.values() if reason is not None)


@pytest.mark.integration
def test_missing_kris_raise_no_flag_and_leave_the_risk_score(warehouse):
    con, _ = warehouse
    flags = _rows(
        con,
        "select smo_id, kri_id, flag, no_data_reason, z_score from marts.site_flags "
        "where kri_id in ('important_deviation_rate', 'entry_lag_over_10d_share')",
    )
    for smo, kri, flag, reason, z in flags:
        missing = (smo, kri) in {
            (NO_DEVIATIONS, "important_deviation_rate"),
            (NO_ENTRY_DATES, "entry_lag_over_10d_share"),
        }
        assert (flag == "no_data") == missing and (reason is not None) == missing, (smo, kri)
        if missing:
            assert z is None
    # every score is the points of the KRIs with data over their weights, and says how many
    mismatches = _rows(
        con,
        """
        with f as (
            select as_of_date, smo_id, study_id, site_id,
                count(*) filter (where flag <> 'no_data') as with_data,
                sum(flag_points) filter (where flag <> 'no_data') * 100
                    / sum(weight) filter (where flag <> 'no_data') as score
            from marts.site_flags where comparison_group = 'study' group by all
        )
        select r.smo_id, r.site_id, r.risk_score, f.score, r.kris_with_data, f.with_data
        from marts.site_risk_scores as r join f using (as_of_date, smo_id, study_id, site_id)
        where r.kris_with_data <> f.with_data or abs(r.risk_score - f.score) > 0.05
        """,
    )
    assert mismatches == []
    per_smo = dict(
        _rows(
            con,
            "select smo_id, max(kris_no_data) from marts.site_risk_scores group by smo_id",
        )
    )
    assert per_smo[NO_DEVIATIONS] > 0 and per_smo[NO_ENTRY_DATES] > 0
    assert per_smo["SMO-AMERICAS"] == 0


@pytest.mark.integration
def test_the_report_shows_grey_no_data_cells_with_the_reason(warehouse):
    _, publish = warehouse
    html = (publish / "oversight-report.html").read_text(encoding="utf-8")
    assert (
        f'data-smo="{NO_DEVIATIONS}" data-kpi="deviations_per_visit" data-rag="no_data" '
        'title="no accepted deviations delivery">no data<' in html
    )
    assert 'title="no data-entry dates">no data<' in html
    assert 'title="no payments feed">no data<' in html
    assert 'title="contracted but not delivered: no data-entry dates">incomplete<' in html
    assert "Grey <b>no data</b>" in html
    assert "SMO-SAKURA: payments: no payments feed" in html
    assert f"No data (not drawn): {NO_DEVIATIONS}: no accepted deviations delivery" in html


def test_generated_dates_are_unchanged_by_withholding():
    """Withholding changes what is delivered, never what happened: same sites, same truth."""
    plain = build_portfolio(11, Scale.named(0.25), 3, dt.date(2026, 11, 16))
    gapped = build_portfolio(11, Scale.named(0.25), 3, dt.date(2026, 11, 16), WITHHELD)
    assert plain.sites == gapped.sites and plain.studies == gapped.studies
