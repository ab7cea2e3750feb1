"""Oversight actions in the warehouse (spec 2.5, 4): a refreshed small portfolio gets a sponsor
actions list written straight into raw.oversight_actions and the ledger, then the dbt models
downstream of it are built for real: escalation, overdue actions, QTL evaluations, and the
warehouse gate that blames a bad list on the sponsor's delivery alone."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from pathlib import Path

import duckdb
import pytest

from core.settings import DBT_PROJECT_DIR
from expectations.feeds import SPONSOR_ID
from ingest.warehouse import ensure_schema
from orchestration.lib.dbt import DBT_EXECUTABLE, load_manifest
from orchestration.lib.isolation import attribute

pytestmark = pytest.mark.integration

ACTION_COLUMNS = (
    "action_id", "study_id", "target_type", "site_id", "kri_id", "qtl_id", "target_smo_id",
    "target_delivery_id", "opened_date", "owner", "action_text", "due_date", "status",
    "closed_date", "outcome",
)  # fmt: skip


def _deliver_actions(con: duckdb.DuckDBPyConnection, actions: list[dict], on: dt.date) -> int:
    """Record an accepted, current SPONSOR actions list dated `on` holding `actions`."""
    ensure_schema(con)
    (delivery_id,) = con.execute("select max(delivery_id) + 1 from ops.deliveries").fetchone()
    con.execute(
        """
        insert into ops.deliveries (delivery_id, smo_id, feed, study_id, studies, file_name,
            sha256, size_bytes, delivery_date, received_at, processed_at, row_count, status,
            error_count, profile_version)
        values (?, ?, 'oversight_actions', '*', ['*'], 'oversight_actions.csv', 'test', 1, ?,
            now()::timestamp, now()::timestamp, ?, 'ACCEPTED', 0, 'test')
        """,
        [delivery_id, SPONSOR_ID, on, len(actions)],
    )
    con.execute(
        "delete from ops.current_deliveries where smo_id = ? and feed = 'oversight_actions'",
        [SPONSOR_ID],
    )
    con.execute(
        "insert into ops.current_deliveries values (?, 'oversight_actions', '*', ?, ?)",
        [SPONSOR_ID, delivery_id, on],
    )
    for row, action in enumerate(actions, start=2):
        values = [action.get(c) for c in ACTION_COLUMNS]
        con.execute(
            f"insert into raw.oversight_actions ({', '.join(ACTION_COLUMNS)}, _delivery_id, "
            f"_source_row) values ({', '.join('?' * (len(ACTION_COLUMNS) + 2))})",
            [*values, delivery_id, row],
        )
    return delivery_id


def _action(action_id: str, study: str, target: str, opened: dt.date, **fields) -> dict:
    return {
        "action_id": action_id,
        "study_id": study,
        "target_type": target,
        "opened_date": opened,
        "owner": "Clinical Operations",
        "action_text": "Reviewed with the site",
        "due_date": opened + dt.timedelta(days=30),
        "status": "OPEN",
        **fields,
    }


def _build(warehouse: Path, tmp: Path, **env: str) -> tuple[int, dict]:
    """dbt build of everything downstream of the actions feed; returns (exit code, run results)."""
    done = subprocess.run(
        [DBT_EXECUTABLE, "build", "--quiet", "--select", "source:raw.oversight_actions+",
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        cwd=DBT_PROJECT_DIR, env={**os.environ, "SMO_WAREHOUSE_PATH": str(warehouse), **env},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    results = json.loads((tmp / "target" / "run_results.json").read_text())
    return done.returncode, {"results": results["results"], "output": done.stdout + done.stderr}


def _red_episodes(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Red flag episodes (within-study comparison): (smo, study, site, KRI, first flagged, first
    red, open), oldest red first."""
    return con.execute(
        """
        select smo_id, study_id, site_id, kri_id, min(first_flagged_week),
               min(as_of_date) filter (where flag = 'red' and status <> 'resolved'),
               bool_and(status <> 'resolved')
        from marts.flag_status where comparison_group = 'study'
        group by episode_id, smo_id, study_id, site_id, kri_id
        having count(*) filter (where flag = 'red' and status <> 'resolved') > 0
        order by 6, 1, 2, 3, 4
        """
    ).fetchall()


def test_every_red_flag_but_one_acted_on_leaves_exactly_that_one_unattended(
    refreshed_env: Path, tmp_path: Path
):
    warehouse = refreshed_env / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        (as_of,) = con.execute("select max(as_of_date) from marts.site_flags").fetchone()
        episodes = _red_episodes(con)
        exceedances = con.execute(
            "select distinct study_id, qtl_id, exceeded_since from marts.study_qtls "
            "where exceeded_since is not null order by all"
        ).fetchall()
        # the one left alone: an open episode red for more than the 7-day window below
        left = next(e for e in episodes if e[6] and e[5] < as_of - dt.timedelta(days=7))
        actions = [
            _action(f"A{i}", study, "SITE_FLAG", first_flagged, site_id=site, kri_id=kri)
            for i, (_smo, study, site, kri, first_flagged, _red, _open) in enumerate(episodes)
            if (_smo, study, site, kri) != left[:4]
        ]
        actions += [
            _action(f"Q{i}", study, "QTL", since, qtl_id=qtl, status="DONE", closed_date=as_of,
                    outcome="Within expected variation; no protocol change")
            for i, (study, qtl, since) in enumerate(exceedances)
        ]  # fmt: skip
        # an open action past its due date
        smo, study, site, kri, first_flagged, *_ = left
        actions.append(
            _action("LATE", study, "SMO", first_flagged, target_smo_id=smo,
                    due_date=as_of - dt.timedelta(days=3))
        )  # fmt: skip
        _deliver_actions(con, actions, as_of)
    code, run = _build(warehouse, tmp_path, SMO_ACTION_DUE_DAYS="7")
    assert code == 0, run["output"]

    assert len(episodes) > 1 and exceedances, "the small portfolio should have red flags and QTLs"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        unattended = con.execute(
            "select smo_id, study_id, site_id, kri_id from marts.unattended_signals "
            "where as_of_date = ? and state = 'unattended'",
            [as_of],
        ).fetchall()
        assert unattended == [left[:4]]
        states = dict(
            con.execute(
                "select state, count(*) from marts.unattended_signals where as_of_date = ? "
                "group by all",
                [as_of],
            ).fetchall()
        )
        assert states == {"attended": len(episodes) - 1 + len(exceedances), "unattended": 1}
        # the due window is SMO_ACTION_DUE_DAYS
        (due_by, started) = con.execute(
            "select action_due_by, started_week from marts.unattended_signals "
            "where as_of_date = ? and state = 'unattended'",
            [as_of],
        ).fetchone()
        assert due_by - started == dt.timedelta(days=7)
        # the scorecard counts it for its SMO only; an SMO with no open red flag has no value
        scorecard = {
            smo: (value, reason)
            for smo, value, reason in con.execute(
                "select smo_id, value, no_data_reason from marts.smo_scorecard "
                "where as_of_date = ? and kpi_id = 'unattended_signals'",
                [as_of],
            ).fetchall()
        }
        open_red_smos = {e[0] for e in episodes if e[6]}
        assert scorecard[left[0]] == (1, None)
        for smo, (value, reason) in scorecard.items():
            if smo == left[0]:
                continue
            if smo in open_red_smos:
                assert (value, reason) == (0, None)
            else:
                assert (value, reason) == (None, "no open red flags")
        assert SPONSOR_ID not in scorecard
        # the overdue action
        assert con.execute(
            "select is_open, is_overdue, days_overdue, target_state from marts.oversight_actions "
            "where action_id = 'LATE'"
        ).fetchone()[:3] == (True, True, 3)
        assert con.execute(
            "select count(*) from marts.oversight_actions where is_overdue"
        ).fetchone() == (1,)
        # QTL evaluations come from the DONE QTL actions
        rows = con.execute(
            "select qtl_status, evaluated_on, conclusion from marts.study_qtls "
            "where as_of_date = ? and is_exceeded",
            [as_of],
        ).fetchall()
        assert rows and all(
            r == ("exceeded_evaluated", as_of, "Within expected variation; no protocol change")
            for r in rows
        )
        # the sponsor is no SMO: no as-of week, coverage or freshness row of its own
        assert con.execute(
            "select count(*) from marts.feed_freshness where smo_id = ?", [SPONSOR_ID]
        ).fetchone() == (0,)


def test_an_action_on_a_site_never_flagged_fails_the_gate_and_blames_the_sponsor_list(
    refreshed_env: Path, tmp_path: Path
):
    warehouse = refreshed_env / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        (as_of,) = con.execute("select max(as_of_date) from marts.site_flags").fetchone()
        study, site, kri = con.execute(
            """
            select study_id, site_id, kri_id from marts.site_flags
            where comparison_group = 'study'
            group by all having bool_and(flag not in ('amber', 'red'))
            order by all limit 1
            """
        ).fetchone()
        delivery_id = _deliver_actions(
            con, [_action("BAD", study, "SITE_FLAG", as_of, site_id=site, kri_id=kri)], as_of
        )
    code, run = _build(warehouse, tmp_path)
    assert code != 0
    failed = [r for r in run["results"] if r["status"] == "fail"]
    assert [r["unique_id"].split(".")[2] for r in failed] == [
        "actions_target_flagged_sites_stg_sponsor__oversight_actions_ref_site_flags_"
    ]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        blamed = attribute(con, run, load_manifest(), since=None)
    assert set(blamed.culprits) == {delivery_id}
    assert blamed.unattributed == []


def test_a_bad_actions_list_is_pulled_and_the_smos_still_publish(
    refreshed_env: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch
):
    """Through the real job: an actions list that passes the delivery gate but targets a flag
    that never existed fails the warehouse gate; isolation pulls the sponsor's list (its
    previous one is current again) and the refresh publishes. With a 7-day window the red flags
    nobody acted on are named by the unattended_signals warning, which does not block."""
    import dagster as dg

    from orchestration.demo import refresh_job

    monkeypatch.setenv("SMO_ACTION_DUE_DAYS", "7")

    data, warehouse = refreshed_env / "data", refreshed_env / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        study, site, kri = con.execute(
            """
            select study_id, site_id, kri_id from marts.site_flags
            where comparison_group = 'study'
            group by all having bool_and(flag not in ('amber', 'red'))
            order by all limit 1
            """
        ).fetchone()
        (previous,) = con.execute(
            "select delivery_id from ops.current_deliveries where smo_id = ?", [SPONSOR_ID]
        ).fetchone()
    latest = max((data / "archive" / SPONSOR_ID).glob("*__oversight_actions_*.csv"))
    text = latest.read_text(encoding="utf-8").rstrip("\n")
    bad_row = f"ACT-9999,{study},SITE_FLAG,{site},{kri},,,,2026-11-17,Central monitoring,Check,"
    inbox = data / "inbox" / SPONSOR_ID
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "oversight_actions_20261117.csv").write_text(
        f"{text}\n{bad_row}2026-12-01,Open,,\n", encoding="utf-8"
    )

    result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)
    assert result.success
    with duckdb.connect(str(warehouse), read_only=True) as con:
        status, reason = con.execute(
            "select d.status, l.rejection_reasons from ops.deliveries d "
            "join marts.delivery_log l using (delivery_id) "
            "where d.file_name = 'oversight_actions_20261117.csv'"
        ).fetchone()
        current = con.execute(
            "select delivery_id from ops.current_deliveries where smo_id = ?", [SPONSOR_ID]
        ).fetchall()
    [check] = [
        c for c in result.get_asset_check_evaluations() if c.check_name == "unattended_signals"
    ]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        unattended = con.execute(
            "select distinct study_id, site_id from marts.unattended_signals "
            "where as_of_date = (select max(as_of_date) from marts.unattended_signals) "
            "and is_open and state = 'unattended' and signal_type = 'SITE_FLAG'"
        ).fetchall()
    assert unattended and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert all(f"{study} {site_id} (" in check.description for study, site_id in unattended)
    assert status == "REJECTED"
    assert "actions_target_flagged_sites" in reason
    assert current == [(previous,)]
    with duckdb.connect(str(refreshed_env / "publish" / "oversight.duckdb"), read_only=True) as p:
        assert p.execute("select count(*) from oversight_actions").fetchone()[0] > 0
