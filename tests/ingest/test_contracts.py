"""One test per contract rule: a valid frame passes; one change breaks exactly that rule."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from expectations.contracts import POLARS_TYPES, feed_schema, roster_keys, validate
from expectations.feeds import FEEDS

DELIVERY = dt.date(2026, 11, 16)
D = dt.date


def frame(feed: str, **overrides) -> pl.DataFrame:
    """A valid two-row frame of `feed`, with column overrides applied to the first row."""
    rows = {
        "sites": dict(smo_id="SMO-A", study_id="S1", site_id="X1", site_name="Clinic", country="ES",
                      status="ENROLLING", selected_date=D(2025, 1, 1), activation_date=D(2025, 3, 1),
                      planned_activation_date=D(2027, 1, 1), target_enrollment=10),
        "subjects": dict(smo_id="SMO-A", study_id="S1", site_id="X1", subject_id="P1",
                         consent_date=D(2025, 4, 1), screened_date=D(2025, 4, 2),
                         randomized_date=D(2025, 4, 20), completed_date=D(2025, 10, 1)),
        "visits": dict(smo_id="SMO-A", study_id="S1", subject_id="P1", visit_id="V1",
                       visit_name="Baseline", status="COMPLETED", planned_date=D(2027, 1, 1),
                       actual_date=D(2025, 4, 20), crf_entry_date=D(2025, 4, 22)),
        "deviations": dict(smo_id="SMO-A", study_id="S1", deviation_id="DV1", site_id="X1",
                           category="Eligibility", severity="IMPORTANT", occurred_date=D(2025, 5, 1),
                           identified_date=D(2025, 5, 3), reported_date=D(2025, 5, 4)),
        "payments": dict(smo_id="SMO-A", study_id="S1", payment_line_id="L1", site_id="X1",
                         item_type="VISIT", amount=100.0, currency="EUR", trigger_date=D(2025, 5, 1),
                         due_date=D(2027, 1, 1), paid_date=D(2025, 6, 1), holdback_amount=10.0),
        "staffing": dict(smo_id="SMO-A", site_id="X1", crc_id="C1", start_date=D(2025, 1, 1),
                         role="CRC", end_date=D(2025, 9, 1), fte=1.0),
        "oversight_actions": dict(action_id="A1", study_id="S1", target_type="SITE_FLAG",
                                  site_id="X1", kri_id="enrollment_rate", opened_date=D(2026, 11, 2),
                                  owner="Central monitoring", action_text="Call the SMO",
                                  due_date=D(2026, 12, 1), status="DONE",
                                  closed_date=D(2026, 11, 9), outcome="Plan agreed"),
    }[feed]  # fmt: skip
    feed_def = FEEDS[feed]
    first = {**rows, **overrides}
    second = {**rows}
    for key in feed_def.key:
        if key not in ("smo_id", "study_id", "site_id", "start_date"):
            second[key] = f"{rows[key]}-b"
    if feed == "staffing":
        second["crc_id"] = "C2"
    if feed == "sites":
        second["site_id"] = "X2"
    schema = {c.name: POLARS_TYPES[c.dtype] for c in feed_def.columns}
    return pl.DataFrame([first, second], schema=schema)


def failed_rules(df: pl.DataFrame, feed: str) -> set[str]:
    roster = roster_keys(["S1"], ["X1"])
    schema = feed_schema(feed, delivery_date=DELIVERY, roster=roster)
    return set(validate(df, schema).get_column("rule").to_list())


@pytest.mark.parametrize("feed", list(FEEDS))
def test_valid_frame_passes(feed):
    assert failed_rules(frame(feed), feed) == set()


CASES = [
    ("sites", {"site_name": None}, "value.required"),
    ("sites", {"status": "ON_HOLD"}, "value.enum"),
    ("sites", {"country": "Spain"}, "value.country_iso"),
    ("sites", {"activation_date": D(2026, 12, 1)}, "date.not_after_delivery"),
    ("subjects", {"consent_date": D(2025, 4, 5)}, "order.consent_le_screened"),
    ("subjects", {"randomized_date": D(2025, 4, 1), "consent_date": D(2025, 3, 1)}, "order.screened_le_randomized"),
    ("subjects", {"screen_failed_date": D(2025, 4, 10)}, "exclusive.screen_failed_randomized"),
    ("subjects", {"discontinued_date": D(2025, 4, 10)}, "order.randomized_le_discontinued"),
    ("subjects", {"completed_date": D(2025, 4, 10)}, "order.randomized_le_completed"),
    ("subjects", {"site_id": "X9"}, "roster.site_known"),
    ("subjects", {"subject_id": "P1-b"}, "key.unique"),
    ("visits", {"status": "DONE"}, "value.enum"),
    ("visits", {"crf_entry_date": D(2025, 4, 19)}, "order.actual_le_crf_entry"),
    ("visits", {"actual_date": D(2026, 11, 17), "crf_entry_date": D(2026, 11, 18)}, "date.not_after_delivery"),
    ("deviations", {"identified_date": D(2025, 4, 30)}, "order.occurred_le_identified"),
    ("deviations", {"reported_date": D(2025, 5, 2)}, "order.identified_le_reported"),
    ("deviations", {"severity": "MAJOR"}, "value.enum"),
    ("deviations", {"site_id": "X9"}, "roster.site_known"),
    ("payments", {"amount": -5.0}, "amount.non_negative"),
    ("payments", {"holdback_amount": -1.0}, "value.non_negative"),
    ("payments", {"amount": float("inf")}, "value.finite"),
    ("payments", {"holdback_amount": float("nan")}, "value.finite"),
    ("payments", {"paid_date": D(2025, 4, 30)}, "order.trigger_le_paid"),
    ("payments", {"currency": "EURO"}, "value.currency_iso"),
    ("payments", {"item_type": "BONUS"}, "value.enum"),
    ("staffing", {"end_date": D(2024, 12, 1)}, "order.start_le_end"),
    ("staffing", {"fte": 2.0}, "value.fte_range"),
    ("staffing", {"site_id": "X9"}, "roster.site_known"),
    ("staffing", {"role": "CRA"}, "value.enum"),
]  # fmt: skip


@pytest.mark.parametrize(("feed", "change", "rule"), CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_each_rule_rejects_what_it_forbids(feed, change, rule):
    assert failed_rules(frame(feed, **change), feed) == {rule}


def test_nan_in_a_required_number_is_refused_as_not_finite():
    """pandera counts NaN as missing too; the report must still say what the value was."""
    assert "value.finite" in failed_rules(frame("payments", amount=float("nan")), "payments")


def test_credit_note_may_be_negative():
    df = frame("payments", amount=-5.0, credit_note=True)
    assert failed_rules(df, "payments") == set()


def test_plans_and_due_dates_may_lie_in_the_future():
    df = frame("visits", planned_date=D(2027, 6, 1))
    assert failed_rules(df, "visits") == set()


def test_warehouse_recheck_skips_delivery_context_rules():
    """Without a delivery date and roster only intrinsic rules apply (current-row check)."""
    df = frame("subjects", site_id="X9", screened_date=D(2030, 1, 1), randomized_date=D(2030, 2, 1),
               completed_date=D(2030, 9, 1))  # fmt: skip
    assert validate(df, feed_schema("subjects")).height == 0
