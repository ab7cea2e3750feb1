"""A delivery's ledger row and its file move are one recoverable unit.

A child process runs the real `process_inbox` and kills itself with SIGKILL at a crash point
(`SMO_TEST_KILL_AT`, core/crash_points.py) of the first file it handles; a plain rerun must then
leave the ledger, the archive, the quarantine and the inbox in agreement, exactly as an
uninterrupted run would have: no DUPLICATE, no file without a row, no row without its file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from core.settings import PROJECT_ROOT
from expectations.feeds import FEEDS
from ingest.inbox import process_inbox
from ingest.profiles import load_profile
from synthetic.bad_deliveries import write_valid_deliveries
from synthetic.dialects import DIALECTS
from tests.ingest.test_strip_identifiers import BIRTH_DATES, DOB, with_column

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and POSIX file names")

SMO = "SMO-IBERIA"
POINTS = ("inbox_before_record", "inbox_after_record", "inbox_after_move")
#: Written beside a stored file: reports, the redacted copy's record, a redaction in progress.
BESIDE = (".report.json", ".report.md", ".redaction.json", ".redacting")

CHILD = """
import sys
from pathlib import Path
import duckdb
from ingest.inbox import process_inbox

root = Path(sys.argv[1])
with duckdb.connect(str(root / "warehouse.duckdb")) as con:
    process_inbox(con, inbox=root / "inbox", archive=root / "archive",
                  quarantine=root / "quarantine", profiles_dir=root / "profiles")
"""


PULL_CHILD = """
import sys
from pathlib import Path
import duckdb
from ingest.retraction import FailedCheck, pull_delivery

root = Path(sys.argv[1])
with duckdb.connect(str(root / "warehouse.duckdb")) as con:
    check = FailedCheck("not_null_x", "a_model", 1, "1 row fails")
    pull_delivery(con, int(sys.argv[2]), [check], quarantine=root / "quarantine")
"""


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict[str, Path]:
    return write_valid_deliveries(tmp_path_factory.mktemp("valid"))[SMO]


def run(root: Path):
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        return process_inbox(con, inbox=root / "inbox", archive=root / "archive",
                             quarantine=root / "quarantine", profiles_dir=root / "profiles")  # fmt: skip


def run_killed(root: Path, point: str, child: str = CHILD, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", child, str(root), *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, "SMO_TEST_KILL_AT": point},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, f"not killed at {point}: {done.stderr[-2000:]}"


def deliver(root: Path, source: Path, name: str | bytes | None = None) -> Path:
    folder = root / "inbox" / SMO
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (source.name if name is None else os.fsdecode(name))
    shutil.copy2(source, target)
    return target


def setup(root: Path, scenario: str, valid: dict[str, Path]) -> None:
    """A warehouse and inbox whose next file to process is the scenario's delivery."""
    profile = DIALECTS[SMO.split("-", 1)[1].lower()].profile(SMO)
    if scenario == "redacted":
        profile["feeds"]["subjects"]["strip_identifiers"] = [DOB]
    (root / "profiles").mkdir(parents=True)
    (root / "profiles" / f"{SMO}.yaml").write_text(
        yaml.safe_dump(profile, allow_unicode=True, sort_keys=False)
    )
    if scenario in ("duplicate", "redacted"):  # a roster (and a first copy) already loaded
        deliver(root, valid["sites"])
        assert {o.status for o in run(root).outcomes} == {"ACCEPTED"}
    if scenario in ("accepted", "duplicate"):
        deliver(root, valid["sites"])
    elif scenario == "rejected":  # subjects without a roster: every site unknown
        deliver(root, valid["subjects"])
    elif scenario == "unopened":  # a control character in the name: quarantined unopened
        deliver(root, valid["sites"], b"IBERIA_centros_\x0720261116.csv")
    elif scenario == "redacted":
        opts = load_profile(root / "profiles" / f"{SMO}.yaml").feeds["subjects"].file
        with_column(valid["subjects"], root / "inbox" / SMO / valid["subjects"].name, opts=opts,
                    at=3, header=DOB, values=BIRTH_DATES)  # fmt: skip


def stored_name(path: str | None) -> str | None:
    return None if path is None else re.sub(r"^\d+__", "", Path(path).name)


def state(root: Path) -> dict:
    """Ledger, gate rows and raw rows without delivery ids (a kill before the commit uses one)."""
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        ledger = con.execute(
            "select status, file_name, sha256, row_count, error_count, file_state, stored_path "
            "from ops.deliveries order by all"
        ).fetchall()
        gate = con.execute(
            "select d.file_name, d.status, g.check_name, g.success from ops.gate_results g "
            "join ops.deliveries d using (delivery_id) order by all"
        ).fetchall()
        raw = con.execute("select count(*) from raw.sites").fetchone()[0]
        raw += con.execute("select count(*) from raw.subjects").fetchone()[0]
    return {"ledger": [(*r[:-1], stored_name(r[-1])) for r in ledger], "gate": gate, "raw": raw}


def assert_agree(root: Path) -> None:
    """Every row's file is where it says; every kept file and report has its row; inbox empty."""
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "select delivery_id, status, stored_path, report_path, file_state from ops.deliveries"
        ).fetchall()
        gated = {r[0] for r in con.execute("select delivery_id from ops.gate_results").fetchall()}
    assert [r for r in rows if r[4] != "DONE"] == []
    assert [p for p in (root / "inbox").rglob("*") if not p.is_dir()] == []
    stored = {Path(r[2]) for r in rows if r[2]}
    kept = [p for p in (root / "archive").rglob("*") if p.is_file()]
    kept += [p for p in (root / "quarantine").rglob("*") if p.is_file()]
    # in an SDTM set's folder: <archive|quarantine>/<smo>/<folder>/<domain file>
    in_set = [p for p in kept if p.parent.parent.parent in (root / "archive", root / "quarantine")]
    kept = [p for p in kept if p not in in_set]
    assert {p for p in kept if not p.name.endswith(BESIDE)} | {p.parent for p in in_set} == stored
    assert not [p for p in in_set if p.name.endswith(".redacting")]
    ids = {r[0] for r in rows}
    beside = [p for p in kept if p.name.endswith(BESIDE)]
    assert [p for p in beside if int(p.name.lstrip(".").split("__")[0]) not in ids] == []
    assert not [p for p in beside if p.name.endswith(".redacting")]
    for delivery_id, status, _, report, _ in rows:
        if status == "REJECTED":
            assert report and Path(report).exists() and delivery_id in gated


SCENARIOS = ("accepted", "rejected", "duplicate", "redacted", "unopened")


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_kill_at_any_point_of_a_delivery_is_settled_by_the_next_run(
    tmp_path, valid, scenario, point
):
    clean = tmp_path / "clean"
    setup(clean, scenario, valid)
    run(clean)
    expected = state(clean)
    root = tmp_path / "killed"
    setup(root, scenario, valid)

    run_killed(root, point)
    summary = run(root)

    assert_agree(root)
    assert state(root) == expected
    said = [line for line in summary.recovered if line.startswith("delivery ")]
    if point == "inbox_before_record":  # nothing recorded: processed again as new
        assert said == [] and len(summary.outcomes) == 1
        leftovers = scenario in ("rejected", "redacted", "unopened")  # reports, redacted copy
        assert any("was never recorded" in line for line in summary.recovered) == leftovers
    else:  # recorded: finished, never processed a second time
        assert summary.outcomes == [] and len(said) == 1, summary.recovered
        assert "LOST" not in said[0]


def test_an_accepted_delivery_killed_before_its_move_is_not_a_duplicate(tmp_path, valid):
    setup(tmp_path, "accepted", valid)
    source = tmp_path / "inbox" / SMO / valid["sites"].name

    run_killed(tmp_path, "inbox_after_record")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        [(delivery_id, status, stored, file_state)] = con.execute(
            "select delivery_id, status, stored_path, file_state from ops.deliveries"
        ).fetchall()
    assert (status, file_state) == ("ACCEPTED", "PENDING")
    assert source.exists() and not Path(stored).exists()  # the disagreement the kill leaves

    summary = run(tmp_path)

    assert summary.outcomes == []  # not recorded again: no DUPLICATE
    [line] = summary.recovered
    assert f"delivery {delivery_id} ACCEPTED {SMO}/{source.name}" in line and "moved to" in line
    assert not source.exists() and Path(stored).read_bytes() == valid["sites"].read_bytes()
    assert_agree(tmp_path)


def test_a_rejected_delivery_killed_before_its_move_keeps_row_and_gate_results(tmp_path, valid):
    setup(tmp_path, "rejected", valid)
    run_killed(tmp_path, "inbox_after_record")
    run(tmp_path)
    assert_agree(tmp_path)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        [(status, errors, checks)] = con.execute(
            "select d.status, d.error_count, count(g.check_name) from ops.deliveries d "
            "join ops.gate_results g using (delivery_id) group by all"
        ).fetchall()
    assert status == "REJECTED" and errors > 0 and checks >= 2  # contract + the rule broken


def test_a_pending_delivery_whose_file_is_gone_is_marked_lost(tmp_path, valid):
    setup(tmp_path, "accepted", valid)
    run_killed(tmp_path, "inbox_after_record")
    (tmp_path / "inbox" / SMO / valid["sites"].name).unlink()  # removed by hand meanwhile

    summary = run(tmp_path)

    [line] = summary.recovered
    assert "LOST" in line and "ACCEPTED" in line
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select status, file_state from ops.deliveries").fetchall() == [
            ("ACCEPTED", "LOST")
        ]
    assert run(tmp_path).recovered == []  # settled once


def test_an_archive_older_than_the_warehouse_keeps_its_files_and_reports(tmp_path, valid):
    setup(tmp_path, "rejected", valid)
    [rejected] = run(tmp_path).outcomes
    kept = sorted(p.name for p in (tmp_path / "quarantine" / SMO).iterdir())
    assert len(kept) == 3  # the file and its two reports
    (tmp_path / "warehouse.duckdb").unlink()  # a new warehouse beside the old quarantine

    summary = run(tmp_path)

    assert summary.recovered == [] and rejected.stored_path.exists()
    assert sorted(p.name for p in (tmp_path / "quarantine" / SMO).iterdir()) == kept


def test_a_pull_killed_before_its_move_is_finished_by_the_next_batch(tmp_path, valid):
    setup(tmp_path, "accepted", valid)
    [loaded] = run(tmp_path).outcomes
    assert loaded.status == "ACCEPTED" and loaded.stored_path.exists()

    run_killed(tmp_path, "pull_after_record", PULL_CHILD, str(loaded.delivery_id))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        [(status, stored, file_state)] = con.execute(
            "select status, stored_path, file_state from ops.deliveries"
        ).fetchall()
    assert (status, file_state) == ("REJECTED", "PENDING") and loaded.stored_path.exists()

    summary = run(tmp_path)

    [line] = summary.recovered
    assert f"delivery {loaded.delivery_id} REJECTED" in line and "from the archive" in line
    assert not loaded.stored_path.exists()
    assert Path(stored).read_bytes() == valid["sites"].read_bytes()
    assert_agree(tmp_path)


# -- SDTM delivery sets: several ledger rows (one per feed) and one folder of domain files ------

PILOT = "SMO-PILOT"
SET = "dm.xpt+ds.xpt+sv.xpt"
EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "cdiscpilot01.yaml"


def send_set(root: Path, pilot: Path, *domains: str, redacted: bool = False) -> None:
    """The pilot's domain files, or (`redacted`) CSV exports of them with a birth date in DM."""
    folder = root / "inbox" / PILOT
    folder.mkdir(parents=True, exist_ok=True)
    for number, domain in enumerate(domains, 1):
        if not redacted:
            shutil.copy(pilot / f"{domain}.xpt", folder / f"{domain}.xpt")
            continue
        frame = pd.read_sas(pilot / f"{domain}.xpt", format="xport", encoding="latin-1")
        for column in frame.select_dtypes("float").columns:  # as SAS writes whole numbers
            if (frame[column].dropna() % 1 == 0).all():
                frame[column] = frame[column].astype("Int64")
        if domain == "dm":
            frame.insert(5, "BRTHDTC", "1950-01-01")
        frame.to_csv(folder / f"extract_{number}.csv", index=False)


def setup_set(root: Path, scenario: str, pilot: Path) -> None:
    """A warehouse and inbox whose next delivery is the scenario's SDTM set (DM, DS, SV)."""
    body = yaml.safe_load(EXAMPLE.read_text())
    if scenario == "rejected":  # VISITNUM alone repeats in the pilot's SV: the set is refused
        body["sdtm"]["visits"] = {"visit_id": ["VISITNUM"]}
    if scenario == "redacted":
        body["sdtm"]["strip_identifiers"] = ["BRTHDTC"]
    (root / "profiles").mkdir(parents=True)
    (root / "profiles" / f"{PILOT}.yaml").write_text(yaml.safe_dump(body))
    if scenario == "duplicate":  # the same set loaded before
        send_set(root, pilot, "dm", "ds", "sv")
        assert {o.status for o in run(root).outcomes} == {"ACCEPTED"}
    domains = ["dm", "ds", "sv"] + (["ae"] if scenario == "unused" else [])
    send_set(root, pilot, *domains, redacted=scenario == "redacted")


def file_states(root: Path) -> list[tuple]:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "select status, file_name, file_state from ops.deliveries order by delivery_id"
        ).fetchall()


def set_state(root: Path) -> dict:
    """`state`, with every feed an SDTM set loads."""
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        raw = {f: con.execute(f"select count(*) from raw.{f}").fetchone()[0] for f in FEEDS}
    return {**state(root), "raw": raw}


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("scenario", ["accepted", "rejected", "duplicate", "redacted", "unused"])
def test_an_sdtm_set_killed_at_any_point_is_settled_by_the_next_run(
    tmp_path, shared_data, scenario, point
):
    pilot = shared_data / "sdtm" / "cdiscpilot01"
    clean = tmp_path / "clean"
    setup_set(clean, scenario, pilot)
    normal = run(clean)
    assert normal.recovered == []  # the set batch before it (duplicate) left nothing PENDING
    assert [r for r in file_states(clean) if r[2] != "DONE"] == []
    assert run(clean).recovered == []
    expected = set_state(clean)
    root = tmp_path / "killed"
    setup_set(root, scenario, pilot)

    run_killed(root, point)  # at the first delivery of the batch: the set (or ae.xpt)
    pending = [r for r in file_states(root) if r[2] == "PENDING"]
    killed = "ae.xpt" if scenario == "unused" else normal.outcomes[0].file_name
    summary = run(root)

    said = [line for line in summary.recovered if line.startswith("delivery ")]
    if point == "inbox_before_record":  # nothing recorded: processed again as new
        assert pending == [] and said == [] and len(summary.outcomes) == len(normal.outcomes)
        leftovers = scenario in ("rejected", "redacted", "unused")  # reports, redacted copies
        assert any("was never recorded" in line for line in summary.recovered) == leftovers
    else:  # recorded: finished, never processed a second time (no DUPLICATE of its rows)
        assert pending and {r[1] for r in pending} == {killed}
        assert len(said) == len(pending) and not any("LOST" in line for line in said), said
        done = "moved to" if point == "inbox_after_record" else "already in"
        assert f"{PILOT}/{killed}" in said[0] and done in said[0]
        assert summary.skipped == []
        if scenario == "unused":  # the set beside it is processed as in any batch
            assert sorted(o.status for o in summary.outcomes) == ["ACCEPTED"] * 3
        else:
            assert summary.outcomes == []
    assert_agree(root)
    assert set_state(root) == expected
    assert run(root).recovered == []  # settled once


def test_a_pulled_sdtm_set_killed_before_its_move_is_finished_by_the_next_batch(
    tmp_path, shared_data
):
    setup_set(tmp_path, "accepted", shared_data / "sdtm" / "cdiscpilot01")
    loaded = {o.feed: o for o in run(tmp_path).outcomes}
    folder = loaded["subjects"].stored_path

    run_killed(tmp_path, "pull_after_record", PULL_CHILD, str(loaded["subjects"].delivery_id))
    rows = file_states(tmp_path)
    assert rows == [("REJECTED", SET, "PENDING")] * 3 and folder.is_dir()

    summary = run(tmp_path)

    assert len(summary.recovered) == 3 and "from the archive" in summary.recovered[0]
    assert not folder.exists()
    assert sorted(p.name for p in (tmp_path / "quarantine" / PILOT / folder.name).iterdir()) == [
        "dm.xpt", "ds.xpt", "sv.xpt"
    ]  # fmt: skip
    assert_agree(tmp_path)


def test_a_pending_set_whose_redacted_copy_was_removed_gets_it_written_again(tmp_path, shared_data):
    setup_set(tmp_path, "redacted", shared_data / "sdtm" / "cdiscpilot01")
    run_killed(tmp_path, "inbox_after_record")
    (copy,) = (tmp_path / "archive" / PILOT).glob("*/.*.redacting")
    copy.unlink()  # removed meanwhile: the original still in the inbox is redacted again

    summary = run(tmp_path)

    assert summary.outcomes == [] and len(summary.recovered) == 3
    assert_agree(tmp_path)
    stored = copy.with_name(copy.name.lstrip(".").removesuffix(".redacting"))
    assert "STUDYID" in stored.read_text() and "BRTHDTC" not in stored.read_text()
    assert json.loads(stored.with_name(stored.name + ".redaction.json").read_text())["redacted"]
