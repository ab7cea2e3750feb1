"""The sponsor's oversight-actions feed through the delivery gate and the inbox (spec 2.5).

Files are written with the generator's own SPONSOR dialects (CSV and XLSX) and read back with
the SPONSOR profile it writes; targets come from a real warehouse where a test needs one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expectations.contracts import ActionTargets, roster_keys
from expectations.feeds import ACTION_STATUSES, FEEDS, SMO_FEEDS, SPONSOR_ID
from ingest.gate import check_delivery
from ingest.inbox import process_inbox
from ingest.plausibility import action_targets, plausibility
from ingest.profiles import ProfileError, load_profile
from synthetic.actions import CSV_DIALECT, FEED, XLSX_DIALECT
from synthetic.actions import profile as sponsor_profile
from synthetic.dialects import write_feed

DELIVERY = dt.date(2026, 11, 16)
COLUMNS = FEEDS[FEED].column_names
LISTED = ", ".join(COLUMNS)
TARGETS = ActionTargets(
    studies=frozenset({"S1", "S2"}),
    sites=roster_keys(["S1", "S1", "S2"], ["X1", "X2", "Y1"]),
    kris=frozenset({"enrollment_rate", "crc_turnover"}),
    qtls=frozenset({"discontinuation_rate"}),
    smos=frozenset({"SMO-A", "SMO-B"}),
    deliveries=frozenset({7, 42}),
)


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("profiles")
    path = folder / f"{SPONSOR_ID}.yaml"
    path.write_text(yaml.safe_dump(sponsor_profile(), sort_keys=False), encoding="utf-8")
    return path


def write(folder: Path, rows: list[dict], *, xlsx: bool = False, date=DELIVERY) -> Path:
    dialect = XLSX_DIALECT if xlsx else CSV_DIALECT
    path = folder / dialect.file_name(FEED, date)
    path.unlink(missing_ok=True)
    return write_feed(dialect, FEED, path, rows)


def check(path: Path, profile_path: Path, targets: ActionTargets | None = TARGETS):
    context = dataclasses.replace(plausibility(), targets=targets)
    return check_delivery(
        path,
        load_profile(profile_path),
        received_at=dt.datetime.combine(DELIVERY, dt.time(6)),
        roster=None,
        plausibility=context,
    )


def action(n: int = 1, **overrides) -> dict:
    row = {c: None for c in COLUMNS}
    row |= {
        "action_id": f"ACT-{n}",
        "study_id": "S1",
        "target_type": "SITE_FLAG",
        "site_id": "X1",
        "kri_id": "enrollment_rate",
        "opened_date": dt.date(2026, 11, 2),
        "owner": "Central monitoring",
        "action_text": "Discuss enrollment with the SMO",
        "due_date": dt.date(2026, 11, 30),
        "status": "OPEN",
    }
    return row | overrides


# -- valid lists load exactly ------------------------------------------------------------------

_text = (
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1)
    .map(str.strip)
    .filter(bool)
)
_day = st.dates(dt.date(2024, 1, 1), DELIVERY)


@st.composite
def valid_action(draw, n: int) -> dict:
    kind = draw(st.sampled_from(("SITE_FLAG", "QTL", "SMO", "DELIVERY")))
    study, site = draw(st.sampled_from([("S1", "X1"), ("S1", "X2"), ("S2", "Y1")]))
    target = {
        "SITE_FLAG": {"site_id": site, "kri_id": draw(st.sampled_from(sorted(TARGETS.kris))),
                      "target_smo_id": draw(st.sampled_from([None, "SMO-A"]))},
        "QTL": {"qtl_id": "discontinuation_rate"},
        "SMO": {"target_smo_id": draw(st.sampled_from(sorted(TARGETS.smos)))},
        "DELIVERY": {"target_delivery_id": draw(st.sampled_from(sorted(TARGETS.deliveries)))},
    }[kind]  # fmt: skip
    opened = draw(_day)
    status = draw(st.sampled_from(ACTION_STATUSES))
    closed = draw(st.dates(opened, DELIVERY)) if status in ("DONE", "CANCELLED") else None
    return action(
        n,
        study_id=study,
        target_type=kind,
        **({"site_id": None, "kri_id": None} | target),
        opened_date=opened,
        owner=draw(_text),
        action_text=draw(_text),
        due_date=opened + dt.timedelta(days=draw(st.integers(0, 400))),
        status=status,
        closed_date=closed,
        outcome=draw(st.none() | _text) if closed else None,
    )


@st.composite
def valid_lists(draw) -> list[dict]:
    count = draw(st.integers(1, 12))
    return [draw(valid_action(n)) for n in range(1, count + 1)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=valid_lists(), xlsx=st.booleans())
def test_a_valid_list_is_accepted_with_exactly_its_values(tmp_path, profile, rows, xlsx):
    result = check(write(tmp_path, rows, xlsx=xlsx), profile)
    assert result.accepted, result.problems[:3]
    loaded = result.frame.drop("_source_row").to_dicts()
    assert loaded == rows
    assert result.frame["_source_row"].to_list() == list(range(2, len(rows) + 2))


# -- rejected whole, naming row, column and rule ------------------------------------------------


def failures(result) -> set[tuple]:
    return {(p.row, p.column, p.rule) for p in result.problems}


@pytest.mark.parametrize(
    ("overrides", "column"),
    [
        ({"study_id": "S9", "target_type": "SMO", "site_id": None, "kri_id": None,
          "target_smo_id": "SMO-A"}, "study_id"),
        ({"site_id": "Y1"}, "site_id"),  # on a roster, but of another study
        ({"kri_id": "payment_cycle_days"}, "kri_id"),  # an SMO-level KRI, not a site's
        ({"target_type": "QTL", "site_id": None, "kri_id": None, "qtl_id": "no_such_qtl"},
         "qtl_id"),
        ({"target_type": "SMO", "site_id": None, "kri_id": None, "target_smo_id": "SMO-Z"},
         "target_smo_id"),
        ({"target_type": "DELIVERY", "site_id": None, "kri_id": None,
          "target_delivery_id": 999}, "target_delivery_id"),
    ],
)  # fmt: skip
def test_an_unknown_target_rejects_the_whole_list(tmp_path, profile, overrides, column):
    result = check(write(tmp_path, [action(1), action(2, **overrides)]), profile)
    assert not result.accepted and result.frame is None
    assert failures(result) == {(3, column, "action.target_exists")}


def test_without_targets_the_existence_rule_is_not_applied(tmp_path, profile):
    path = write(tmp_path, [action(1, study_id="S9", site_id="Z")])
    assert not check(path, profile).accepted
    assert check(path, profile, targets=None).accepted


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"due_date": dt.date(2026, 11, 1)}, {("due_date", "action.dates_in_order")}),
        ({"status": "DONE", "closed_date": dt.date(2026, 10, 30)},
         {("closed_date", "action.dates_in_order")}),
        ({"opened_date": dt.date(2026, 11, 20), "due_date": dt.date(2026, 12, 1)},
         {("opened_date", "date.not_after_delivery")}),
        ({"status": "DONE"}, {("closed_date", "action.closed_with_status")}),
        ({"closed_date": dt.date(2026, 11, 3)}, {("closed_date", "action.closed_with_status")}),
    ],
)  # fmt: skip
def test_dates_out_of_order_reject_the_list(tmp_path, profile, overrides, expected):
    result = check(write(tmp_path, [action(1, **overrides), action(2)]), profile)
    assert not result.accepted
    assert failures(result) == {(2, column, rule) for column, rule in expected}


@pytest.mark.parametrize(
    ("overrides", "columns"),
    [
        ({"kri_id": None}, {"kri_id"}),
        ({"qtl_id": "discontinuation_rate"}, {"qtl_id"}),
        ({"target_delivery_id": 7}, {"target_delivery_id"}),
        ({"target_type": "QTL"}, {"site_id", "kri_id", "qtl_id"}),
        ({"target_type": "SMO", "site_id": None, "kri_id": None}, {"target_smo_id"}),
        ({"target_type": "DELIVERY", "site_id": None, "kri_id": None,
          "target_smo_id": "SMO-A"}, {"target_delivery_id", "target_smo_id"}),
    ],
)  # fmt: skip
def test_target_columns_must_match_the_target_type(tmp_path, profile, overrides, columns):
    result = check(write(tmp_path, [action(1), action(2, **overrides)]), profile)
    assert not result.accepted
    assert failures(result) == {(3, c, "action.target_consistent") for c in columns}


def test_an_identifier_header_in_the_list_is_refused(tmp_path, profile):
    path = write(tmp_path, [action(1)])
    text = path.read_text(encoding="utf-8").splitlines()
    text = [f"{text[0]},Patient name"] + [f"{line},x" for line in text[1:]]
    path.write_text("\r\n".join(text) + "\r\n", encoding="utf-8")
    result = check(path, profile)
    assert ("column.direct_identifier", "Patient name") in {
        (p.rule, p.column) for p in result.problems
    }


# -- the SPONSOR profile is no SMO's --------------------------------------------------------------


def test_the_sponsor_id_and_the_sponsor_feed_go_together(tmp_path):
    smo_profile = sponsor_profile() | {"smo_id": "SMO-X"}
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(smo_profile))
    with pytest.raises(ProfileError, match="sponsor only"):
        load_profile(tmp_path / "a.yaml")
    sponsor = sponsor_profile()
    sponsor["feeds"]["sites"] = {"file_pattern": "sites_{delivery_date:%Y%m%d}.csv"}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(sponsor))
    with pytest.raises(ProfileError, match="reserved"):
        load_profile(tmp_path / "b.yaml")
    assert FEED not in SMO_FEEDS


# -- through the inbox, beside the SMOs ----------------------------------------------------------


@pytest.fixture
def batch(tmp_path, small_portfolio):
    """The first week of every SMO and the sponsor's first two lists, in one inbox."""
    truth = json.loads((small_portfolio / "ground_truth.json").read_text())
    first = truth["delivery_dates"][0].replace("-", "")
    inbox = tmp_path / "inbox"
    for source in sorted((small_portfolio / "inbox").glob("*/*")):
        if first in source.name or source.parent.name == SPONSOR_ID:
            (inbox / source.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, inbox / source.parent.name / source.name)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    summary = process_inbox(con, inbox=inbox, archive=tmp_path / "archive",
                            quarantine=tmp_path / "quarantine",
                            profiles_dir=small_portfolio / "profiles")  # fmt: skip
    yield con, summary, truth, small_portfolio
    con.close()


def test_generated_lists_load_exactly_and_the_newest_is_current(batch):
    from synthetic.actions import plan_actions
    from synthetic.portfolio import Scale, build_portfolio

    con, summary, truth, _ = batch
    sponsor = [o for o in summary.outcomes if o.smo_id == SPONSOR_ID]
    assert [o.file_name for o in sponsor] == truth["oversight_actions"]["files"]
    assert {o.status for o in sponsor} == {"ACCEPTED"}, sponsor
    ledger = con.execute(
        "select status from ops.deliveries where smo_id = ? order by delivery_date", [SPONSOR_ID]
    ).fetchall()
    assert [r[0] for r in ledger] == ["SUPERSEDED"] * (len(sponsor) - 1) + ["ACCEPTED"]
    last = dt.date.fromisoformat(truth["delivery_dates"][-1])
    dates = [dt.date.fromisoformat(d) for d in truth["delivery_dates"]]
    portfolio = build_portfolio(truth["seed"], Scale(**truth["scale"]), len(dates), last)
    actions, _ = plan_actions(portfolio, truth["rejected_deliveries"])
    expected = [{c: r.get(c) for c in COLUMNS} for a in actions if (r := a.row(last))]
    ((current,),) = con.execute(
        "select delivery_id from ops.current_deliveries where smo_id = ? and feed = ? "
        "and study_id = '*'",
        [SPONSOR_ID, FEED],
    ).fetchall()
    loaded = pl.from_arrow(
        con.sql(f"select {LISTED} from raw.{FEED} "
                f"where _delivery_id = {current} order by _source_row").arrow()
    )  # fmt: skip
    assert loaded.to_dicts() == expected


def test_the_sponsor_is_no_smo_in_the_ledger_or_the_rosters(batch):
    con, summary, _, _ = batch
    rows = con.execute(
        "select distinct feed, study_id from ops.deliveries where smo_id = ?", [SPONSOR_ID]
    ).fetchall()
    assert rows == [(FEED, "*")]
    current = con.execute(
        "select smo_id, feed, study_id from ops.current_deliveries where smo_id = ? or feed = ?",
        [SPONSOR_ID, FEED],
    ).fetchall()
    assert current == [(SPONSOR_ID, FEED, "*")]
    smo_feeds = con.execute(
        "select distinct smo_id from ops.current_deliveries where feed in "
        "(select unnest(?::varchar[]))",
        [list(SMO_FEEDS)],
    ).fetchall()
    assert SPONSOR_ID not in {r[0] for r in smo_feeds} and len(smo_feeds) >= 4
    assert SPONSOR_ID not in action_targets(con).smos
    assert {o.feed for o in summary.outcomes if o.smo_id == SPONSOR_ID} == {FEED}
    assert all(o.feed != FEED for o in summary.outcomes if o.smo_id != SPONSOR_ID)


def test_a_rejected_list_is_quarantined_with_its_report_and_the_previous_stays(batch, tmp_path):
    con, _, truth, portfolio = batch
    before = con.execute(
        "select delivery_id from ops.current_deliveries where smo_id = ?", [SPONSOR_ID]
    ).fetchall()
    last = dt.date.fromisoformat(truth["delivery_dates"][-1]) + dt.timedelta(days=7)
    inbox = tmp_path / "inbox" / SPONSOR_ID
    site = truth["oversight_actions"]["attended_flags"][0]
    path = write(inbox, [action(1, study_id=site["study_id"], site_id=site["site_id"],
                                kri_id="no_such_kri", opened_date=last - dt.timedelta(days=3),
                                due_date=last)], date=last)  # fmt: skip
    os.utime(path, (dt.datetime.combine(last, dt.time(6)).timestamp(),) * 2)
    summary = process_inbox(con, inbox=tmp_path / "inbox", archive=tmp_path / "archive",
                            quarantine=tmp_path / "quarantine",
                            profiles_dir=portfolio / "profiles")  # fmt: skip
    (outcome,) = summary.outcomes
    assert outcome.status == "REJECTED" and outcome.stored_path.parent.name == SPONSOR_ID
    report = json.loads(outcome.report_path.with_suffix(".json").read_text())
    assert [(f["row"], f["column"], f["rule"], f["value"]) for f in report["failures"]] == [
        (2, "kri_id", "action.target_exists", "no_such_kri")
    ]
    assert (
        con.execute(
            "select delivery_id from ops.current_deliveries where smo_id = ?", [SPONSOR_ID]
        ).fetchall()
        == before
    )


def test_the_dry_run_checks_targets_against_the_warehouse(batch, tmp_path):
    """`smo-oversight check-delivery --smo SPONSOR`, through the console script."""
    import subprocess
    import sys

    from core.settings import PROJECT_ROOT

    con, _, truth, portfolio = batch
    con.close()  # the dry run opens the warehouse read-only
    site = truth["oversight_actions"]["attended_flags"][0]
    today = dt.date.today()
    path = write(tmp_path, [action(1, study_id=site["study_id"], site_id=site["site_id"],
                                   kri_id="no_such_kri", opened_date=today, due_date=today)],
                 date=today)  # fmt: skip

    def dry_run(warehouse: Path) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SMO_DATA_DIR": str(tmp_path),
               "SMO_WAREHOUSE_PATH": str(warehouse)}  # fmt: skip
        return subprocess.run(
            [str(Path(sys.executable).with_name("smo-oversight")), "check-delivery", "--smo",
             SPONSOR_ID, "--profile", str(portfolio / "profiles" / f"{SPONSOR_ID}.yaml"),
             str(path)], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT,
        )  # fmt: skip

    checked = dry_run(tmp_path / "warehouse.duckdb")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "targets from" in checked.stdout and "action.target_exists" in checked.stdout
    unchecked = dry_run(tmp_path / "none.duckdb")
    assert unchecked.returncode == 0, unchecked.stdout + unchecked.stderr
    assert "action targets are not checked" in unchecked.stdout
