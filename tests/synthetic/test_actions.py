"""The sponsor's synthetic oversight actions: what the ground truth says was planted is what the
weekly lists hold."""

from __future__ import annotations

import datetime as dt

import pytest

from synthetic.actions import OPEN_AFTER_DAYS, plan_actions
from synthetic.generate import DEFAULT_END
from synthetic.portfolio import PLANTED_ROLE_KRI, Scale, build_portfolio


@pytest.fixture(scope="module", params=[8, 3, 1], ids=lambda w: f"{w}weeks")
def planned(request):
    portfolio = build_portfolio(7, Scale.named("demo"), request.param, DEFAULT_END)
    rejected = [{"smo_id": portfolio.smos[0].smo_id, "feed": "payments", "file_name": "x.csv",
                 "rule": "amount.non_negative",
                 "delivery_date": portfolio.delivery_dates[-1].isoformat()}]  # fmt: skip
    actions, truth = plan_actions(portfolio, rejected)
    lists = {d: [r for a in actions if (r := a.row(d))] for d in portfolio.delivery_dates}
    return portfolio, truth, lists


def site_flags(rows) -> set[tuple]:
    return {
        (r["study_id"], r["site_id"], r["kri_id"]) for r in rows if r["target_type"] == "SITE_FLAG"
    }


def test_every_weekly_list_has_rows_and_unique_ids(planned):
    _, _, lists = planned
    for rows in lists.values():
        assert rows
        assert len({r["action_id"] for r in rows}) == len(rows)


def test_the_unattended_flag_gets_no_action_and_the_attended_ones_do(planned):
    portfolio, truth, lists = planned
    last = lists[portfolio.delivery_dates[-1]]
    flag = truth["unattended_flag"]
    assert (flag["study_id"], flag["site_id"], flag["kri_id"]) not in site_flags(last)
    attended = {(f["study_id"], f["site_id"], f["kri_id"]) for f in truth["attended_flags"]}
    assert attended == site_flags(last)
    planted = {
        (s.study_id, s.site_id, PLANTED_ROLE_KRI[s.role]): s.role for s in portfolio.sites if s.role
    }
    assert attended <= set(planted)
    first = portfolio.delivery_dates[0]
    for f in truth["attended_flags"]:
        role = planted[(f["study_id"], f["site_id"], f["kri_id"])]
        start = portfolio.edit_from if role == "retroactive_edits" else first
        opened = dt.date.fromisoformat(f["opened_date"])
        assert start < opened <= start + dt.timedelta(days=max(OPEN_AFTER_DAYS))


def test_exactly_the_planted_action_is_overdue_at_the_last_delivery(planned):
    portfolio, truth, lists = planned
    last_date = portfolio.delivery_dates[-1]
    overdue = [
        r["action_id"]
        for r in lists[last_date]
        if r["status"] in ("OPEN", "IN_PROGRESS") and r["due_date"] < last_date
    ]
    assert overdue == ([truth["overdue_action_id"]] if truth["overdue_action_id"] else [])
    if len(portfolio.delivery_dates) >= 3:
        assert truth["overdue_action_id"] is not None


def test_closed_actions_carry_their_date_and_outcome(planned):
    _, _, lists = planned
    for as_of, rows in lists.items():
        for r in rows:
            closed = r["status"] in ("DONE", "CANCELLED")
            assert (r["closed_date"] is not None) == closed
            assert r["opened_date"] <= as_of and r["opened_date"] <= r["due_date"]
            if closed:
                assert r["opened_date"] <= r["closed_date"] <= as_of and r["outcome"]
