"""Inbox processing against a real DuckDB file: idempotency, snapshots, quarantine, crashes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from core.settings import PROJECT_ROOT
from ingest.inbox import process_inbox, ready_files

WEEKS = ("20261102", "20261109", "20261116")


@pytest.fixture
def env(tmp_path, small_portfolio):
    """Empty inbox, the portfolio's profiles, and a fresh warehouse."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield {"tmp": tmp_path, "inbox": inbox, "src": small_portfolio / "inbox", "con": con,
           "profiles": small_portfolio / "profiles"}  # fmt: skip
    con.close()


def deliver(env, smo_id: str, *names_containing: str) -> list[Path]:
    """Copy the portfolio's files of one SMO whose names contain all given parts."""
    copied = []
    for path in sorted((env["src"] / smo_id).iterdir()):
        if all(part in path.name for part in names_containing):
            target = env["inbox"] / smo_id / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied.append(target)
    assert copied, (smo_id, names_containing)
    return copied


def run(env):
    t = env["tmp"]
    return process_inbox(env["con"], inbox=env["inbox"], archive=t / "archive",
                         quarantine=t / "quarantine", profiles_dir=env["profiles"])  # fmt: skip


def current_delivery(con, smo_id: str, feed: str) -> set[int]:
    rows = con.execute(
        "select delivery_id from ops.current_deliveries where smo_id = ? and feed = ?",
        [smo_id, feed],
    ).fetchall()
    return {r[0] for r in rows}


def test_first_batch_roster_counts_for_the_files_after_it(env):
    deliver(env, "SMO-IBERIA", WEEKS[0])
    summary = run(env)
    assert {o.status for o in summary.outcomes} == {"ACCEPTED"}
    assert summary.outcomes[0].feed == "sites"  # the roster is loaded first


def test_same_file_twice_is_a_duplicate_and_adds_no_rows(env):
    deliver(env, "SMO-IBERIA", WEEKS[0])
    run(env)
    con = env["con"]
    rows_before = con.execute("select count(*) from raw.subjects").fetchone()[0]
    deliver(env, "SMO-IBERIA", "pacientes", WEEKS[0])
    summary = run(env)
    assert [o.status for o in summary.outcomes] == ["DUPLICATE"]
    assert con.execute("select count(*) from raw.subjects").fetchone()[0] == rows_before
    original, duplicate_of = con.execute(
        "select min(delivery_id) filter (where status = 'ACCEPTED' and feed = 'subjects'), "
        "max(duplicate_of) from ops.deliveries"
    ).fetchone()
    assert duplicate_of == original
    assert not list((env["inbox"] / "SMO-IBERIA").iterdir())  # moved to the archive


def test_newer_snapshot_wins_and_a_late_older_one_is_kept_as_history(env):
    con = env["con"]
    deliver(env, "SMO-IBERIA", WEEKS[1])
    run(env)
    week2 = current_delivery(con, "SMO-IBERIA", "subjects")
    deliver(env, "SMO-IBERIA", WEEKS[2])
    run(env)
    week3 = current_delivery(con, "SMO-IBERIA", "subjects")
    assert week3 != week2
    assert con.execute(
        "select status from ops.deliveries where delivery_id = ?", [next(iter(week2))]
    ).fetchone() == ("SUPERSEDED",)
    deliver(env, "SMO-IBERIA", "pacientes", WEEKS[0])  # an old file arriving late
    summary = run(env)
    assert [o.status for o in summary.outcomes] == ["SUPERSEDED"]
    assert current_delivery(con, "SMO-IBERIA", "subjects") == week3
    assert con.execute("select count(distinct _delivery_id) from raw.subjects").fetchone()[0] == 3


def test_rejected_file_is_quarantined_and_nothing_else_is_affected(env):
    con = env["con"]
    deliver(env, "SMO-IBERIA", WEEKS[0])
    deliver(env, "SMO-AMERICAS", WEEKS[0])
    run(env)
    iberia_before = current_delivery(con, "SMO-IBERIA", "subjects")
    rows_before = con.execute("select count(*) from raw.subjects").fetchone()[0]

    [bad] = deliver(env, "SMO-IBERIA", "pacientes", WEEKS[1])
    bad.write_bytes(bad.read_bytes().replace(b";", b","))  # wrong delimiter
    deliver(env, "SMO-IBERIA", "visitas", WEEKS[1])
    deliver(env, "SMO-AMERICAS", "Subjects", WEEKS[1])
    summary = run(env)

    statuses = {o.file_name: o.status for o in summary.outcomes}
    assert statuses[bad.name] == "REJECTED"
    assert {s for n, s in statuses.items() if n != bad.name} == {"ACCEPTED"}
    assert current_delivery(con, "SMO-IBERIA", "subjects") == iberia_before
    loaded = sum(
        o.rows for o in summary.outcomes if o.feed == "subjects" and o.status == "ACCEPTED"
    )
    assert loaded > 0
    assert con.execute("select count(*) from raw.subjects").fetchone()[0] == rows_before + loaded

    quarantined = sorted(p.name for p in (env["tmp"] / "quarantine" / "SMO-IBERIA").iterdir())
    assert any(n.endswith(bad.name) for n in quarantined)
    report = json.loads(
        next((env["tmp"] / "quarantine" / "SMO-IBERIA").glob("*.report.json")).read_text()
    )
    assert report["status"] == "REJECTED" and report["totals"][0]["rule"] == "file.delimiter"
    ledger = con.execute(
        "select status, error_count, report_path from ops.deliveries where file_name = ?",
        [bad.name],
    ).fetchone()
    assert ledger[0] == "REJECTED" and ledger[1] >= 1 and ledger[2].endswith(".report.md")


def test_files_still_being_written_are_left_alone(env):
    folder = env["inbox"] / "SMO-IBERIA"
    folder.mkdir()
    source = next((env["src"] / "SMO-IBERIA").glob("IBERIA_pacientes_*"))
    for name in (source.name + ".part", source.name + ".tmp", "." + source.name):
        shutil.copy(source, folder / name)
    fresh = folder / source.name
    shutil.copy(source, fresh)
    os.utime(fresh, None)  # modified just now
    assert ready_files(env["inbox"], settle_seconds=60) == {}
    now_later = time.time() + 120
    assert [p.name for p in ready_files(env["inbox"], 60, now_later)["SMO-IBERIA"]] == [source.name]
    summary = process_inbox(env["con"], inbox=env["inbox"], archive=env["tmp"] / "a",
                            quarantine=env["tmp"] / "q", profiles_dir=env["profiles"],
                            settle_seconds=60)  # fmt: skip
    assert summary.outcomes == []
    assert len(list(folder.iterdir())) == 4


def test_crash_in_the_middle_of_a_load_leaves_no_rows(env):
    """A real process dies after inserting a delivery's rows but before commit."""
    deliver(env, "SMO-IBERIA", "centros", WEEKS[0])
    run(env)
    env["con"].close()
    [subjects] = deliver(env, "SMO-IBERIA", "pacientes", WEEKS[0])
    t = env["tmp"]
    script = textwrap.dedent(f"""
        import os, duckdb
        from pathlib import Path
        import ingest.warehouse as wh
        from ingest.inbox import process_inbox
        def crash(con, *args, **kwargs):
            assert con.execute("select count(*) from raw.subjects").fetchone()[0] > 0
            os._exit(9)  # rows inserted, transaction still open
        wh._advance_current = crash
        con = duckdb.connect({str(t / "warehouse.duckdb")!r})
        process_inbox(con, inbox=Path({str(env["inbox"])!r}), archive=Path({str(t / "archive")!r}),
                      quarantine=Path({str(t / "quarantine")!r}), profiles_dir=Path({str(env["profiles"])!r}))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 9, done.stderr
    con = duckdb.connect(str(t / "warehouse.duckdb"))
    env["con"] = con
    assert con.execute("select count(*) from raw.subjects").fetchone()[0] == 0
    assert (
        con.execute("select count(*) from ops.deliveries where feed = 'subjects'").fetchone()[0]
        == 0
    )
    assert subjects.exists()  # still in the inbox: the next run picks it up
    summary = run(env)
    assert [o.status for o in summary.outcomes] == ["ACCEPTED"]
    assert (
        con.execute("select count(*) from raw.subjects").fetchone()[0] == summary.outcomes[0].rows
    )
