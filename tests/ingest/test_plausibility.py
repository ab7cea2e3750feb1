"""Plausibility at the gate: values a warehouse test would refuse are refused per file first,
judged against the SMO's roster (study start) and the FX seed dbt converts with."""

from __future__ import annotations

import dataclasses
import datetime as dt

import polars as pl
import pytest

from expectations.contracts import Plausibility
from ingest.gate import check_delivery
from ingest.plausibility import plausibility, study_starts_of
from ingest.profiles import load_profile
from synthetic.bad_deliveries import END, _Base

RECEIVED = dt.datetime(2026, 11, 16, 6)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from synthetic.bad_deliveries import write_catalogue, write_valid_deliveries

    out = tmp_path_factory.mktemp("plausibility")
    write_catalogue(out, cases=["unknown_site"])  # writes the profiles
    return out, write_valid_deliveries(out / "valid"), _Base(7)


def _check(written, smo_id: str, feed: str, context: Plausibility):
    out, valid, base = written
    profile = load_profile(out / "profiles" / f"{smo_id}.yaml")
    return check_delivery(
        valid[smo_id][feed],
        profile,
        received_at=RECEIVED,
        roster=base.roster(smo_id),
        plausibility=context,
    )


def _starts(base: _Base, smo_id: str) -> dict[str, dt.date]:
    _, rows = base.rows(smo_id, "sites")
    return study_starts_of(pl.DataFrame(rows))


def test_dates_before_the_studys_start_minus_the_margin_are_refused(written):
    _, _, base = written
    starts = _starts(base, "SMO-AMERICAS")
    assert starts, "the roster gives each study a start"
    accepted = _check(written, "SMO-AMERICAS", "subjects", plausibility(study_starts=starts))
    assert accepted.accepted, accepted.problems[:3]
    # The same file against a study that (per the roster) started long after its subjects
    # were screened: every screening date falls before the window.
    later = {study: END - dt.timedelta(days=10) for study in starts}
    context = dataclasses.replace(plausibility(study_starts=later), margin_days=0)
    refused = _check(written, "SMO-AMERICAS", "subjects", context)
    assert not refused.accepted and refused.frame is None
    window = [p for p in refused.problems if p.rule == "date.before_window"]
    assert window and window[0].column == "screened_date" and window[0].row >= 2
    assert "before the plausible window" in window[0].message


def test_the_absolute_earliest_date_applies_where_the_study_start_is_unknown(written):
    context = dataclasses.replace(plausibility(), earliest=END)
    refused = _check(written, "SMO-IBERIA", "visits", context)
    assert "date.before_window" in {t.rule for t in refused.totals}


def test_payments_need_a_rate_for_their_currency_and_the_reporting_currency(written):
    context = plausibility()
    assert _check(written, "SMO-IBERIA", "payments", context).accepted
    # The reporting currency's rates start after every payment: nothing can be converted.
    fx = {**context.fx_first_rate, context.reporting_currency: END + dt.timedelta(days=1)}
    refused = _check(
        written, "SMO-IBERIA", "payments", dataclasses.replace(context, fx_first_rate=fx)
    )
    totals = {t.rule: t.count for t in refused.totals}
    assert totals.get("fx.rate_missing", 0) > 0
    problem = next(p for p in refused.problems if p.rule == "fx.rate_missing")
    assert "currency=" in problem.value


def test_plan_dates_far_beyond_the_delivery_are_refused(written):
    context = dataclasses.replace(plausibility(), future_years=0)
    assert _check(written, "SMO-AMERICAS", "visits", plausibility()).accepted
    refused = _check(written, "SMO-AMERICAS", "visits", context)
    # a scheduled visit's planned_date may lie after the delivery, but not past the window
    problem = next(p for p in refused.problems if p.rule == "date.after_window")
    assert problem.column == "planned_date" and str(END) in problem.message


def test_settings_configure_the_window(monkeypatch):
    monkeypatch.setenv("SMO_DATE_WINDOW_EARLIEST", "2010-05-01")
    monkeypatch.setenv("SMO_DATE_WINDOW_MARGIN_DAYS", "30")
    monkeypatch.setenv("SMO_DATE_WINDOW_FUTURE_YEARS", "3")
    context = plausibility(study_starts={"S1": dt.date(2024, 1, 31)})
    assert context.earliest == dt.date(2010, 5, 1) and context.future_years == 3
    assert context.study_floors() == {"S1": dt.date(2024, 1, 1)}
    assert context.fx_first_rate["EUR"] <= dt.date(2023, 1, 1)
