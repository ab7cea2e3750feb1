"""The inbox is hostile input: unsafe names, links, folders and FIFOs are quarantined unopened,
never followed, never crash the batch; an unforeseen error on one file is that file's rejection.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import duckdb
import pytest
import yaml

from ingest import inbox as inbox_module
from ingest.inbox import process_inbox, ready_files
from ingest.inbox_entries import escaped_name, scan_inbox
from synthetic.bad_deliveries import write_valid_deliveries
from synthetic.dialects import DIALECTS

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file names, links and FIFOs")


@pytest.fixture(scope="session")
def valid(tmp_path_factory) -> dict:
    """Valid deliveries of four SMOs (one study each) and their profiles; read-only."""
    root = tmp_path_factory.mktemp("valid")
    files = write_valid_deliveries(root / "deliveries")
    profiles = root / "profiles"
    profiles.mkdir()
    for smo_id in files:
        dialect = DIALECTS[smo_id.split("-", 1)[1].lower()]
        (profiles / f"{smo_id}.yaml").write_text(
            yaml.safe_dump(dialect.profile(smo_id), allow_unicode=True, sort_keys=False)
        )
    return {"files": files, "profiles": profiles}


@pytest.fixture
def env(tmp_path, valid):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield {"tmp": tmp_path, "inbox": tmp_path / "inbox", "con": con, **valid}
    con.close()


def run(env, **kwargs):
    t = env["tmp"]
    return process_inbox(env["con"], inbox=env["inbox"], archive=t / "archive",
                         quarantine=t / "quarantine", profiles_dir=env["profiles"], **kwargs)  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def put(env, smo_id: str, feed: str, name: str | bytes | None = None) -> Path:
    """Copy a valid delivery into the SMO's inbox folder, under its own or the given name."""
    source = env["files"][smo_id][feed]
    folder = env["inbox"] / smo_id
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (source.name if name is None else os.fsdecode(name))
    shutil.copy2(source, target)
    return target


class FifoOpenWatch:
    """Proves a FIFO is never opened: a writer blocks in open() until some reader opens it."""

    def __init__(self, fifo: Path):
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._wait, args=(str(fifo),), daemon=True)
        self.thread.start()

    def _wait(self, fifo: str) -> None:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until the FIFO is opened for reading
        self.opened.set()
        os.close(fd)

    def release(self, fifo_now_at: Path) -> None:
        fd = os.open(fifo_now_at, os.O_RDONLY | os.O_NONBLOCK)
        self.thread.join(timeout=10)
        os.close(fd)


def test_hostile_entries_are_quarantined_unopened_and_other_smos_load(env):
    con = env["con"]
    elsewhere = env["tmp"] / "elsewhere"
    elsewhere.mkdir()
    outside = Path(shutil.copy2(env["files"]["SMO-IBERIA"]["subjects"], elsewhere))

    put(env, "SMO-IBERIA", "sites")
    cp1252_name = "Año_pacientes.csv".encode("cp1252")  # b"A\xf1o_pacientes.csv"
    not_utf8 = put(env, "SMO-IBERIA", "visits", cp1252_name)
    bell = put(env, "SMO-IBERIA", "deviations", "IBERIA_desviaciones_\x0720261116.csv")
    folder = env["inbox"] / "SMO-IBERIA"
    link = folder / env["files"]["SMO-IBERIA"]["subjects"].name  # a name the profile matches
    link.symlink_to(outside)
    subdir = folder / "week46"
    subdir.mkdir()
    shutil.copy2(env["files"]["SMO-IBERIA"]["payments"], subdir)
    fifo = folder / "IBERIA_pagos_20261116.csv"
    os.mkfifo(fifo)
    watch = FifoOpenWatch(fifo)
    delivered = {"not_utf8": sha256(not_utf8), "bell": sha256(bell)}
    americas = [put(env, "SMO-AMERICAS", feed) for feed in ("sites", "subjects", "visits")]

    summary = run(env)

    assert not watch.opened.is_set(), "the FIFO was opened"
    by_name = {o.file_name: o for o in summary.outcomes}
    expected = {
        "A\\xf1o_pacientes.csv": ("file.name_unsafe", "file"),
        "IBERIA_desviaciones_\\x0720261116.csv": ("file.name_unsafe", "file"),
        link.name: ("file.not_regular", "symbolic link"),
        "week46": ("file.not_regular", "folder"),
        fifo.name: ("file.not_regular", "named pipe (FIFO)"),
    }
    quarantine = env["tmp"] / "quarantine" / "SMO-IBERIA"
    for name, (rule, kind) in expected.items():
        outcome = by_name[name]
        assert outcome.status == "REJECTED" and outcome.stored_path.parent == quarantine
        stored_name = outcome.stored_path.name
        assert os.fsencode(stored_name).decode("utf-8") == stored_name  # a safe name
        assert stored_name.isprintable() and stored_name.endswith(name)
        report = json.loads(Path(f"{outcome.stored_path}.report.json").read_text())
        assert report["file"] == name and report["status"] == "REJECTED"
        assert report["totals"][0]["rule"] == rule
        assert report["entry"]["entry_kind"] == kind
        assert bytes.fromhex(report["entry"]["name_bytes_hex"]) == os.fsencode(
            {"A\\xf1o_pacientes.csv": not_utf8.name}.get(name, name.replace("\\x07", "\x07"))
        )
        ledger = con.execute(
            "select status, sha256, report_path, stored_path from ops.deliveries "
            "where file_name = ?",
            [name],
        ).fetchone()
        assert ledger[0] == "REJECTED" and ledger[3] == str(outcome.stored_path)
        rules = con.execute(
            "select check_name from ops.gate_results where target = ? and not success",
            [f"SMO-IBERIA/{name}"],
        ).fetchall()
        assert (rule,) in rules

    # Regular files with unsafe names keep their bytes; the others are what they were.
    assert sha256(by_name["A\\xf1o_pacientes.csv"].stored_path) == delivered["not_utf8"]
    assert sha256(by_name["IBERIA_desviaciones_\\x0720261116.csv"].stored_path) == delivered["bell"]
    stored_link = by_name[link.name].stored_path
    assert stored_link.is_symlink() and os.readlink(stored_link) == str(outside)
    assert stat.S_ISDIR(os.lstat(by_name["week46"].stored_path).st_mode)
    assert (by_name["week46"].stored_path / env["files"]["SMO-IBERIA"]["payments"].name).exists()
    stored_fifo = by_name[fifo.name].stored_path
    assert stat.S_ISFIFO(os.lstat(stored_fifo).st_mode)
    watch.release(stored_fifo)
    # The link was not followed: its target is untouched and nothing of it was loaded.
    assert sha256(outside) == sha256(env["files"]["SMO-IBERIA"]["subjects"])
    assert (
        con.execute("select count(*) from raw.subjects where smo_id = 'SMO-IBERIA'").fetchone()[0]
        == 0
    )
    assert con.execute(
        "select count(*) from ops.deliveries where status = 'ACCEPTED' and feed = 'subjects' "
        "and smo_id = 'SMO-IBERIA'"
    ).fetchone() == (0,)

    # The other SMO's files (and the IBERIA roster) in the same batch loaded.
    accepted = {o.file_name for o in summary.outcomes if o.status == "ACCEPTED"}
    assert accepted == {p.name for p in americas} | {env["files"]["SMO-IBERIA"]["sites"].name}
    # The archive holds regular files with the delivered bytes.
    archived = sorted((env["tmp"] / "archive").rglob("*"))
    assert len(archived) == 4 + 2  # four files, two SMO folders
    for path in (p for p in archived if not p.is_dir()):
        assert stat.S_ISREG(os.lstat(path).st_mode)
        original = next(
            f
            for files in env["files"].values()
            for f in files.values()
            if path.name.endswith(f.name)
        )
        assert sha256(path) == sha256(original)

    # Nothing is left to trip the next run.
    assert list((env["inbox"] / "SMO-IBERIA").iterdir()) == []
    again = run(env)
    assert again.outcomes == [] and again.skipped == []


def test_scan_classifies_without_following_and_settles_on_the_entry_itself(env, tmp_path):
    folder = env["inbox"] / "SMO-IBERIA"
    folder.mkdir(parents=True)
    old_target = tmp_path / "old.csv"
    old_target.write_text("x\n")
    os.utime(old_target, (1_000_000, 1_000_000))  # the target is ancient
    (folder / "fresh_link.csv").symlink_to(old_target)  # the link itself is new
    (folder / "dangling.csv").symlink_to(tmp_path / "does-not-exist")
    (folder / "name\x1b[31m.csv").write_text("x\n")

    assert ready_files(env["inbox"], settle_seconds=60) == {}  # links settle by their own mtime
    scan = scan_inbox(env["inbox"], settle_seconds=0)
    kinds = {e.name: (e.kind, [p.rule for p in e.problems]) for e in scan.entries["SMO-IBERIA"]}
    assert kinds == {
        "dangling.csv": ("symbolic link", ["file.not_regular"]),
        "fresh_link.csv": ("symbolic link", ["file.not_regular"]),
        "name\\x1b[31m.csv": ("file", ["file.name_unsafe"]),
    }
    summary = run(env)
    assert {o.status for o in summary.outcomes} == {"REJECTED"} and len(summary.outcomes) == 3
    assert old_target.read_text() == "x\n"


def test_inbox_top_level_entries_that_are_not_smo_folders_are_left_alone(env, tmp_path):
    inbox = env["inbox"]
    inbox.mkdir()
    real = tmp_path / "linked-smo"
    real.mkdir()
    shutil.copy2(env["files"]["SMO-IBERIA"]["sites"], real)
    (inbox / "SMO-IBERIA").symlink_to(real, target_is_directory=True)
    (inbox / "stray.csv").write_text("a,b\n1,2\n")
    weird = inbox / os.fsdecode(b"SMO-\xff")
    weird.mkdir()
    shutil.copy2(env["files"]["SMO-IBERIA"]["sites"], weird)
    os.mkfifo(inbox / "pipe")
    put(env, "SMO-AMERICAS", "sites")

    summary = run(env)

    skipped = dict(summary.skipped)
    assert set(skipped) == {"SMO-IBERIA", "stray.csv", "SMO-\\xff", "pipe"}
    assert "symbolic link" in skipped["SMO-IBERIA"] and "never followed" in skipped["SMO-IBERIA"]
    assert "not valid UTF-8" in skipped["SMO-\\xff"]
    assert "named pipe" in skipped["pipe"] and "file at the top" in skipped["stray.csv"]
    assert [o.status for o in summary.outcomes] == ["ACCEPTED"]  # the real SMO folder
    assert sorted(p.name for p in real.iterdir()) == [env["files"]["SMO-IBERIA"]["sites"].name]
    assert (inbox / "SMO-IBERIA").is_symlink() and (inbox / "stray.csv").exists()
    assert len(list(weird.iterdir())) == 1 and stat.S_ISFIFO(os.lstat(inbox / "pipe").st_mode)


def test_an_unforeseen_error_rejects_that_file_only(env, monkeypatch):
    """One file's gate raises; the batch goes on and the file is rejected with the error."""
    put(env, "SMO-IBERIA", "sites")
    visits = put(env, "SMO-IBERIA", "visits")
    put(env, "SMO-IBERIA", "subjects")
    real_check = inbox_module.check_delivery

    def flaky(path, *args, **kwargs):
        if path.name == visits.name:
            raise KeyError("boom: a reader bug")
        return real_check(path, *args, **kwargs)

    monkeypatch.setattr(inbox_module, "check_delivery", flaky)
    summary = run(env)

    statuses = {o.file_name: o.status for o in summary.outcomes}
    assert statuses == {
        env["files"]["SMO-IBERIA"]["sites"].name: "ACCEPTED",
        env["files"]["SMO-IBERIA"]["subjects"].name: "ACCEPTED",
        visits.name: "REJECTED",
    }
    rejected = next(o for o in summary.outcomes if o.status == "REJECTED")
    assert rejected.feed == "visits" and "boom: a reader bug" in rejected.first_problem
    report = json.loads(Path(f"{rejected.stored_path}.report.json").read_text())
    assert report["totals"][0]["rule"] == "file.unreadable"
    assert "KeyError" in report["failures"][0]["message"]
    assert sha256(rejected.stored_path) == sha256(env["files"]["SMO-IBERIA"]["visits"])


def test_an_error_inside_the_load_leaves_no_half_written_delivery(env, monkeypatch):
    """The rows are inserted, then the load fails: rolled back, rejected, the batch goes on."""
    put(env, "SMO-IBERIA", "sites")
    subjects = put(env, "SMO-IBERIA", "subjects")
    put(env, "SMO-AMERICAS", "sites")
    real_advance = inbox_module.warehouse._advance_current

    def failing(con, delivery_id, result, studies):
        if result.path.name == subjects.name:
            assert con.execute("select count(*) from raw.subjects").fetchone()[0] > 0
            raise duckdb.ConstraintException("simulated failure after the rows were inserted")
        return real_advance(con, delivery_id, result, studies)

    monkeypatch.setattr(inbox_module.warehouse, "_advance_current", failing)
    summary = run(env)

    statuses = sorted((o.smo_id, o.feed, o.status) for o in summary.outcomes)
    assert statuses == [
        ("SMO-AMERICAS", "sites", "ACCEPTED"),
        ("SMO-IBERIA", "sites", "ACCEPTED"),
        ("SMO-IBERIA", "subjects", "REJECTED"),
    ]
    con = env["con"]
    assert con.execute("select count(*) from raw.subjects").fetchone()[0] == 0
    assert con.execute("select status from ops.deliveries where feed = 'subjects'").fetchall() == [
        ("REJECTED",)
    ]


def test_a_name_too_long_to_store_with_its_prefix_is_shortened(env):
    name = "é" * 120 + ".csv"  # 244 bytes: valid, but no room for the id prefix
    put(env, "SMO-IBERIA", "sites", name)
    summary = run(env)
    [outcome] = summary.outcomes
    assert outcome.status == "REJECTED" and outcome.file_name == name  # no pattern matches
    assert len(os.fsencode(outcome.stored_path.name)) <= 255 - len(".report.json")
    assert outcome.stored_path.name.endswith(".csv")
    assert Path(f"{outcome.stored_path}.report.json").exists()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"A\xf1o.csv", "A\\xf1o.csv"),
        ("Año.csv".encode(), "Año.csv"),
        (b"tab\there.csv", "tab\\x09here.csv"),
        ("rtl\u202egnp.exe".encode(), "rtl\\u202egnp.exe"),
        (b"back\\slash", "back\\\\slash"),
    ],
)
def test_escaped_names_are_printable_and_one_to_one(raw, shown):
    assert escaped_name(raw) == shown
    assert escaped_name(os.fsdecode(raw)) == shown


def test_a_file_loaded_but_not_moved_is_moved_by_the_next_run_not_duplicated(env, monkeypatch):
    source = put(env, "SMO-IBERIA", "sites")
    real_move = inbox_module.move_entry
    monkeypatch.setattr(
        inbox_module, "move_entry", lambda *a: (_ for _ in ()).throw(OSError("disk full"))
    )
    summary = run(env)
    [loaded] = summary.outcomes
    assert loaded.status == "ACCEPTED"
    [(where, why)] = summary.skipped
    assert where.startswith("SMO-IBERIA/") and "disk full" in why and "next run" in why
    summary = run(env)  # still failing: left alone, not recorded again
    assert summary.outcomes == [] and summary.recovered == []
    [(where, why)] = summary.skipped
    assert f"delivery {loaded.delivery_id} (ACCEPTED) is recorded" in why and "disk full" in why
    monkeypatch.setattr(inbox_module, "move_entry", real_move)
    summary = run(env)
    assert summary.outcomes == [] and not source.exists() and loaded.stored_path.exists()
    [line] = summary.recovered
    assert f"delivery {loaded.delivery_id} ACCEPTED" in line and "moved to" in line
    ledger = env["con"].execute("select status, file_state from ops.deliveries").fetchall()
    assert ledger == [("ACCEPTED", "DONE")]


def test_an_unreadable_profile_skips_that_smo_only(env):
    put(env, "SMO-AMERICAS", "sites")
    put(env, "SMO-IBERIA", "sites")
    profiles = env["tmp"] / "profiles"
    shutil.copytree(env["profiles"], profiles)
    (profiles / "SMO-IBERIA.yaml").write_bytes(b"smo_id: SMO-IBERIA\ndescription: \xff\xfe\n")
    t = env["tmp"]
    summary = process_inbox(env["con"], inbox=env["inbox"], archive=t / "archive",
                            quarantine=t / "quarantine", profiles_dir=profiles)  # fmt: skip
    assert [(o.smo_id, o.status) for o in summary.outcomes] == [("SMO-AMERICAS", "ACCEPTED")]
    [(where, why)] = summary.skipped
    assert where.startswith("SMO-IBERIA/") and "SMO-IBERIA.yaml" in why
