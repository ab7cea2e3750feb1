"""SDTM deliveries through the inbox: the domain files of one delivery are grouped, checked
together and loaded, duplicated or rejected as one set (real CDISCPILOT01 domains, real DuckDB)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from core.settings import PROJECT_ROOT
from ingest.inbox import process_inbox

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "cdiscpilot01.yaml"
SMO = "SMO-PILOT"
SET = "dm.xpt+ds.xpt+sv.xpt"


@pytest.fixture
def env(tmp_path, shared_data):
    pilot = shared_data / "sdtm" / "cdiscpilot01"
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    shutil.copy(EXAMPLE, profiles / f"{SMO}.yaml")
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield {"tmp": tmp_path, "pilot": pilot, "inbox": tmp_path / "inbox" / SMO, "con": con,
           "profiles": profiles}  # fmt: skip
    con.close()


def deliver(env, *domains: str, suffix: str = "") -> list[Path]:
    env["inbox"].mkdir(parents=True, exist_ok=True)
    copied = []
    for domain in domains:
        copied.append(env["inbox"] / f"{domain}.xpt{suffix}")
        shutil.copy(env["pilot"] / f"{domain}.xpt", copied[-1])
    return copied


def run(env):
    t = env["tmp"]
    return process_inbox(env["con"], inbox=t / "inbox", archive=t / "archive",
                         quarantine=t / "quarantine", profiles_dir=env["profiles"])  # fmt: skip


def set_digest(folder: Path, domains=("dm", "ds", "sv")) -> str:
    """The set's identity computed here from the files: domain, name, SHA-256 per line."""
    digest = hashlib.sha256()
    for domain in domains:
        sha = hashlib.sha256((folder / f"{domain}.xpt").read_bytes()).hexdigest()
        digest.update(f"{domain.upper()}:{domain}.xpt:{sha}\n".encode())
    return digest.hexdigest()


def counts(con) -> tuple[int, int, int]:
    return tuple(
        con.execute(f"select count(*) from raw.{feed}").fetchone()[0]
        for feed in ("sites", "subjects", "visits")
    )


def test_a_complete_set_loads_every_feed_together_and_an_unused_domain_is_refused(env):
    deliver(env, "dm", "ds", "sv", "ae")
    summary = run(env)
    by_file = {(o.file_name, o.feed): o for o in summary.outcomes}
    assert {k: o.status for k, o in by_file.items()} == {
        (SET, "sites"): "ACCEPTED",
        (SET, "subjects"): "ACCEPTED",
        (SET, "visits"): "ACCEPTED",
        ("ae.xpt", None): "REJECTED",
    }
    assert "domain AE, which the pipeline does not read" in by_file["ae.xpt", None].first_problem
    assert summary.skipped == []
    assert not any(env["inbox"].iterdir()), "every file left the inbox"

    dm = pd.read_sas(env["pilot"] / "dm.xpt", format="xport", encoding="latin-1")
    sv = pd.read_sas(env["pilot"] / "sv.xpt", format="xport", encoding="latin-1")
    con = env["con"]
    assert counts(con) == (dm.SITEID.nunique(), len(dm), len(sv))
    ledger = con.execute(
        "select feed, file_name, sha256, stored_path, status from ops.deliveries "
        "where file_name = ? order by delivery_id",
        [SET],
    ).fetchall()
    assert [r[0] for r in ledger] == ["sites", "subjects", "visits"]
    assert {r[2] for r in ledger} == {set_digest(env["pilot"])}
    (folder,) = {Path(r[3]) for r in ledger}
    assert folder.parent == env["tmp"] / "archive" / SMO and folder.name.endswith(f"__{SET}")
    for domain in ("dm", "ds", "sv"):  # the delivered bytes, kept together
        assert (folder / f"{domain}.xpt").read_bytes() == (
            env["pilot"] / f"{domain}.xpt"
        ).read_bytes()
    current = con.execute(
        "select feed, count(*) from ops.current_deliveries where smo_id = ? group by 1 order by 1",
        [SMO],
    ).fetchall()
    assert current == [("sites", 1), ("subjects", 1), ("visits", 1)]
    (ae,) = (env["tmp"] / "quarantine" / SMO).glob("*__ae.xpt.report.json")
    assert json.loads(ae.read_text())["failures"][0]["rule"] == "sdtm.domain_unrecognized"


def test_an_incomplete_set_waits_in_the_inbox_until_it_is_complete(env):
    deliver(env, "dm", "ds")
    summary = run(env)
    assert summary.outcomes == []
    assert {w for w, _ in summary.skipped} == {f"{SMO}/dm.xpt", f"{SMO}/ds.xpt"}
    assert all("lacks SV" in why for _, why in summary.skipped)

    (partial,) = deliver(env, "sv", suffix=".part")  # still being written
    summary = run(env)
    assert summary.outcomes == []
    assert all("sv.xpt.part still arriving" in why for _, why in summary.skipped)
    assert counts(env["con"]) == (0, 0, 0)

    partial.rename(partial.with_name("sv.xpt"))
    summary = run(env)
    assert sorted(o.status for o in summary.outcomes) == ["ACCEPTED"] * 3
    assert summary.skipped == []


def test_the_same_set_again_is_a_duplicate_and_adds_no_rows(env):
    deliver(env, "dm", "ds", "sv")
    first = {o.feed: o.delivery_id for o in run(env).outcomes}
    before = counts(env["con"])
    deliver(env, "dm", "ds", "sv")
    again = run(env)
    assert {o.feed: o.status for o in again.outcomes} == dict.fromkeys(first, "DUPLICATE")
    assert counts(env["con"]) == before
    duplicate_of = dict(
        env["con"]
        .execute("select feed, duplicate_of from ops.deliveries where status = 'DUPLICATE'")
        .fetchall()
    )
    assert duplicate_of == first
    assert not any(env["inbox"].iterdir())
    states = env["con"].execute("select distinct file_state from ops.deliveries").fetchall()
    assert states == [("DONE",)] and again.recovered == []  # nothing left for a recovery


def test_a_set_with_one_failing_feed_is_rejected_whole_with_one_report(env):
    """Identified by VISITNUM alone, the pilot's SV repeats a key: visits fail, so nothing of
    the set loads, not even the sites and subjects that passed."""
    body = yaml.safe_load(EXAMPLE.read_text())
    body["sdtm"]["visits"] = {"visit_id": ["VISITNUM"]}
    (env["profiles"] / f"{SMO}.yaml").write_text(yaml.safe_dump(body))
    deliver(env, "dm", "ds", "sv")
    summary = run(env)
    (outcome,) = summary.outcomes
    assert (outcome.status, outcome.file_name, outcome.error_count) == ("REJECTED", SET, 2)
    assert counts(env["con"]) == (0, 0, 0)
    ledger = env["con"].execute("select status, feed, sha256 from ops.deliveries").fetchall()
    assert ledger == [("REJECTED", None, set_digest(env["pilot"]))]
    assert env["con"].execute("select file_state from ops.deliveries").fetchall() == [("DONE",)]
    assert sorted(p.name for p in outcome.stored_path.iterdir()) == ["dm.xpt", "ds.xpt", "sv.xpt"]
    report = json.loads(outcome.report_path.with_suffix(".json").read_text())
    failures = [(f["file"], f["rule"], f["column"], f["value"]) for f in report["failures"]]
    key = "study_id=CDISCPILOT01, subject_id=01-711-1143, visit_id=9.2"
    assert failures == [("sv.xpt", "key.unique", None, key)] * 2
    sv = pd.read_sas(env["pilot"] / "sv.xpt", format="xport", encoding="latin-1")
    repeated = sv[(sv.USUBJID == "01-711-1143") & (sv.VISITNUM == 9.2)].index
    assert sorted(f["row"] for f in report["failures"]) == [i + 1 for i in repeated]  # 1-based
    assert report["sdtm"]["feeds"]["visits"].startswith("rejected")
    assert report["sdtm"]["feeds"]["subjects"] == "passed its checks (not loaded)"
    assert "sv.xpt" in outcome.report_path.read_text()  # the Markdown names the file per row


def test_an_unreadable_domain_file_rejects_the_set_without_a_crash(env):
    dm, _, _ = deliver(env, "dm", "ds", "sv")
    dm.write_bytes(b"HEADER RECORD*******LIBRARY but then nothing useful\n")
    summary = run(env)
    (outcome,) = summary.outcomes
    assert outcome.status == "REJECTED" and outcome.file_name == SET
    assert "dm.xpt" in outcome.first_problem
    assert counts(env["con"]) == (0, 0, 0)
    assert not any(env["inbox"].iterdir())


def test_a_pulled_feed_takes_the_rest_of_its_set_with_it(env):
    """A blocking warehouse check blames one feed of a loaded set: the set leaves whole."""
    from ingest.retraction import FailedCheck, pull_delivery

    deliver(env, "dm", "ds", "sv")
    ids = {o.feed: o.delivery_id for o in run(env).outcomes}
    check = FailedCheck("a_cross_feed_test", "int_snapshot__subjects", 3, "3 rows failed")
    quarantine = env["tmp"] / "quarantine"
    pulled = pull_delivery(env["con"], ids["subjects"], [check], quarantine=quarantine)
    assert pulled.set_delivery_ids == (ids["sites"], ids["visits"])
    con = env["con"]
    assert counts(con) == (0, 0, 0)
    assert con.execute("select count(*) from ops.current_deliveries").fetchone()[0] == 0
    rows = con.execute("select status, stored_path from ops.deliveries").fetchall()
    (folder,) = {Path(r[1]) for r in rows}
    assert {r[0] for r in rows} == {"REJECTED"} and folder.parent == quarantine / SMO
    assert sorted(p.name for p in folder.iterdir()) == ["dm.xpt", "ds.xpt", "sv.xpt"]
    assert not (env["tmp"] / "archive" / SMO / folder.name).exists()


def test_dated_names_make_one_set_per_date_and_a_future_date_is_refused(env):
    import datetime as dt

    body = yaml.safe_load(EXAMPLE.read_text())
    body["sdtm"]["file_pattern"] = "{domain}_{delivery_date:%Y%m%d}.xpt"
    (env["profiles"] / f"{SMO}.yaml").write_text(yaml.safe_dump(body))
    env["inbox"].mkdir(parents=True)
    for day, domains in (("20150601", "dm ds sv"), ("20991231", "dm ds sv"), ("20150608", "dm")):
        for domain in domains.split():
            shutil.copy(env["pilot"] / f"{domain}.xpt", env["inbox"] / f"{domain}_{day}.xpt")
    summary = run(env)
    statuses = {(o.file_name, o.feed): o.status for o in summary.outcomes}
    dated = "dm_20150601.xpt+ds_20150601.xpt+sv_20150601.xpt"
    future = "dm_20991231.xpt+ds_20991231.xpt+sv_20991231.xpt"
    assert statuses == {
        (dated, "sites"): "ACCEPTED",
        (dated, "subjects"): "ACCEPTED",
        (dated, "visits"): "ACCEPTED",
        (future, None): "REJECTED",
    }
    (refused,) = [o for o in summary.outcomes if o.status == "REJECTED"]
    assert "after the files arrived" in refused.first_problem
    dates = env["con"].execute("select distinct delivery_date from ops.deliveries "
                               "where status = 'ACCEPTED'").fetchall()  # fmt: skip
    assert dates == [(dt.date(2015, 6, 1),)]
    assert [(w, "lacks DS, SV" in why) for w, why in summary.skipped] == [
        (f"{SMO}/dm_20150608.xpt", True)
    ]


def test_csv_exports_named_freely_are_grouped_by_their_domain_column(env):
    env["inbox"].mkdir(parents=True)
    for number, domain in enumerate(("dm", "ds", "sv"), 1):
        frame = pd.read_sas(env["pilot"] / f"{domain}.xpt", format="xport", encoding="latin-1")
        for column in frame.select_dtypes("float").columns:  # as SAS writes whole numbers
            if (frame[column].dropna() % 1 == 0).all():
                frame[column] = frame[column].astype("Int64")
        frame.to_csv(env["inbox"] / f"extract_{number}.csv", index=False)
    summary = run(env)
    name = "extract_1.csv+extract_2.csv+extract_3.csv"  # DM, DS, SV by their DOMAIN column
    assert {(o.file_name, o.feed, o.status) for o in summary.outcomes} == {
        (name, feed, "ACCEPTED") for feed in ("sites", "subjects", "visits")
    }
    assert counts(env["con"])[1] == len(pd.read_sas(env["pilot"] / "dm.xpt", format="xport"))
