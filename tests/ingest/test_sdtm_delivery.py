"""CDISC SDTM deliveries (spec 2.3): DM+DS(+SV) -> subjects, SV -> visits, DV(+SUPPDV) ->
deviations, a roster from DM, on the real CDISCPILOT01 domains (read, never copied)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from core.settings import PROJECT_ROOT
from ingest.profiles import ProfileError, load_profile
from ingest.sdtm import check_sdtm_delivery

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "cdiscpilot01.yaml"
RECEIVED = dt.datetime(2015, 6, 1)


@pytest.fixture
def pilot(shared_data) -> Path:
    return shared_data / "sdtm" / "cdiscpilot01"


def read(pilot: Path, domain: str) -> pd.DataFrame:
    """A domain as SAS would export it to CSV: whole numbers without a decimal part."""
    frame = pd.read_sas(pilot / f"{domain}.xpt", format="xport", encoding="latin-1")
    for column in frame.select_dtypes("float").columns:
        if (frame[column].dropna() % 1 == 0).all():
            frame[column] = frame[column].astype("Int64")
    return frame


def profile(tmp_path: Path, **changes) -> object:
    body = yaml.safe_load(EXAMPLE.read_text())
    for key, value in changes.items():
        target = body
        *parents, last = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[last] = value
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_profile(path)


def check(paths, prof):
    return check_sdtm_delivery(list(paths), prof, received_at=RECEIVED, roster=None)


def by_feed(delivery):
    return {r.feed: r for r in delivery.results}


def test_the_pilot_gives_subjects_with_counts_from_ds_and_dm(pilot, tmp_path):
    delivery = check([pilot / "dm.xpt", pilot / "ds.xpt", pilot / "sv.xpt"], profile(tmp_path))
    assert delivery.problems == []
    results = by_feed(delivery)
    subjects = results["subjects"]
    assert subjects.accepted, subjects.problems[:3]
    frame = subjects.frame
    # Independently, from the domains themselves.
    dm, ds = read(pilot, "dm"), read(pilot, "ds")
    events = ds[ds.DSCAT == "DISPOSITION EVENT"]
    screen_failed = set(events[events.DSDECOD == "SCREEN FAILURE"].USUBJID)
    assert screen_failed == set(dm[dm.ARMCD == "Scrnfail"].USUBJID)  # the two sources agree
    completed = set(events[events.DSDECOD == "COMPLETED"].USUBJID)
    ended = set(events[~events.DSDECOD.isin(["SCREEN FAILURE"])].USUBJID)
    randomized = set(dm[(dm.RFSTDTC != "") & ~dm.USUBJID.isin(screen_failed)].USUBJID)

    assert frame.height == len(dm) == dm.USUBJID.nunique()
    assert (
        set(frame.filter(frame["screen_failed_date"].is_not_null())["subject_id"]) == screen_failed
    )
    assert set(frame.filter(frame["randomized_date"].is_not_null())["subject_id"]) == randomized
    assert set(frame.filter(frame["completed_date"].is_not_null())["subject_id"]) == completed
    discontinued = set(frame.filter(frame["discontinued_date"].is_not_null())["subject_id"])
    assert discontinued == ended - completed
    assert frame["discontinuation_reason"].null_count() == frame.height - len(discontinued)
    # The pilot has no consent date: screened comes from the first screening visit (declared).
    assert set(frame["screened_date_source"]) == {"first_screening_visit"}
    assert frame["consent_date"].null_count() == frame.height
    # Demographics ride along; no birth date exists or is carried.
    assert frame["sex"].to_list() == dm.SEX.tolist()
    assert frame["age"].to_list() == dm.AGE.astype(int).tolist()
    assert not any("BRTH" in c for c in frame.columns)


def test_the_pilot_visits_keep_the_genuine_duplicate_and_the_roster_comes_from_dm(pilot, tmp_path):
    files = [pilot / n for n in ("sv.xpt", "dm.xpt", "ds.xpt")]
    by_number = profile(tmp_path, **{"sdtm.visits": {"visit_id": ["VISITNUM"]}})
    visits = by_feed(check(files, by_number))["visits"]
    assert visits.row_count == len(read(pilot, "sv"))
    assert [(t.rule, t.count) for t in visits.totals] == [("key.unique", 2)]
    # The example profile declares a visit as number + start date: both visits 9.2 load.
    results = by_feed(check(files, profile(tmp_path)))
    visits = results["visits"]
    assert visits.accepted and visits.frame.height == len(read(pilot, "sv"))
    frame = visits.frame.filter(visits.frame["subject_id"] == "01-711-1143")
    assert sorted(v for v in frame["visit_id"] if v.startswith("9.2/")) == [
        "9.2/2013-06-22",
        "9.2/2013-09-22",
    ]
    sites = results["sites"]
    assert sites.accepted
    dm = read(pilot, "dm")
    assert sorted(sites.frame["site_id"]) == sorted(dm.SITEID.unique())
    assert set(sites.frame["country"]) == {"US"}  # USA (alpha-3) -> US


def test_domains_are_found_by_their_domain_column(pilot, tmp_path):
    names = {"dm": "export_a.xpt", "ds": "export_b.xpt", "sv": "export_c.xpt"}
    paths = []
    for domain, name in names.items():
        paths.append(tmp_path / name)
        shutil.copy(pilot / f"{domain}.xpt", paths[-1])
    delivery = check(paths, profile(tmp_path))
    assert delivery.domains == {"DM": paths[0], "DS": paths[1], "SV": paths[2]}
    assert by_feed(delivery)["subjects"].accepted


def test_a_missing_domain_and_a_stray_file_are_reported(pilot, tmp_path):
    delivery = check([pilot / "dm.xpt", pilot / "ae.xpt"], profile(tmp_path))
    rules = sorted(p.rule for p in delivery.problems)
    assert rules == ["sdtm.domain_missing", "sdtm.domain_missing", "sdtm.domain_unrecognized"]
    assert not delivery.accepted and delivery.results == []


def write_csv(frame: pd.DataFrame, path: Path, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


def test_a_renamed_term_is_reported_by_rule_or_mapped(pilot, tmp_path):
    ds = read(pilot, "ds")
    ds["DSDECOD"] = ds.DSDECOD.replace("PROTOCOL VIOLATION", "PROTOCOL DEVIATION")
    files = [pilot / "dm.xpt", write_csv(ds, tmp_path / "ds.csv"), pilot / "sv.xpt"]
    subjects = by_feed(check(files, profile(tmp_path)))["subjects"]
    assert [(t.rule, t.column, t.count) for t in subjects.totals] == [
        ("sdtm.unknown_term", "DSDECOD", 6)
    ]
    assert {p.value for p in subjects.problems} == {"PROTOCOL DEVIATION"}
    mapped = profile(
        tmp_path, **{"sdtm.disposition.term_map": {"PROTOCOL DEVIATION": "PROTOCOL VIOLATION"}}
    )
    subjects = by_feed(check(files, mapped))["subjects"]
    assert subjects.accepted, subjects.problems[:3]
    reasons = subjects.frame["discontinuation_reason"].to_list()
    assert reasons.count("PROTOCOL VIOLATION") == 6
    assert "PROTOCOL DEVIATION" not in reasons


def test_na_tokens_in_a_csv_export_are_missing_when_declared(pilot, tmp_path):
    dm = read(pilot, "dm").replace("", None)
    files = [write_csv(dm, tmp_path / "dm.csv", na_rep="NA"), pilot / "ds.xpt", pilot / "sv.xpt"]
    subjects = by_feed(check(files, profile(tmp_path)))["subjects"]
    assert subjects.accepted, subjects.problems[:3]
    refused = by_feed(check(files, profile(tmp_path, **{"file.null_values": [""]})))["subjects"]
    assert not refused.accepted
    # RFICDTC is NA for everyone: without the token it is read as a date and refused.
    assert {(t.rule, t.column) for t in refused.totals} == {
        ("value.type", "consent_date"),
        ("value.type", "screened_date"),
    }


def test_a_birth_date_rejects_the_delivery_unless_stripped(pilot, tmp_path):
    dm = read(pilot, "dm")
    dm.insert(5, "BRTHDTC", "1950-01-01")
    files = [write_csv(dm, tmp_path / "dm.csv"), pilot / "ds.xpt", pilot / "sv.xpt"]
    delivery = check(files, profile(tmp_path))
    assert [(p.rule, p.column) for p in delivery.problems] == [
        ("column.direct_identifier", "BRTHDTC")
    ]
    assert delivery.results == []
    stripped = check(files, profile(tmp_path, **{"sdtm.strip_identifiers": ["BRTHDTC"]}))
    subjects = by_feed(stripped)["subjects"]
    assert subjects.accepted
    assert subjects.stripped_columns == ["BRTHDTC"]
    assert not any("BRTH" in c for c in subjects.frame.columns)


def dv_domains(pilot: Path, tmp_path: Path) -> list[Path]:
    """A DV domain in SDTM layout for four pilot subjects, with a SUPPDV importance qualifier."""
    dm = read(pilot, "dm")
    subjects = dm[dm.ARMCD != "Scrnfail"].USUBJID.tolist()[:4]
    rows = []
    for i, subject in enumerate(subjects):
        for seq in (1, 2):
            rows.append({"STUDYID": "CDISCPILOT01", "DOMAIN": "DV", "USUBJID": subject,
                         "DVSEQ": seq, "DVSPID": f"PD-{i}{seq}",
                         "DVTERM": "Visit out of window" if seq == 1 else "Dose not taken as planned",
                         "DVDECOD": "VISIT OUT OF WINDOW" if seq == 1 else "STUDY TREATMENT DEVIATION",
                         "DVCAT": "VISIT SCHEDULE" if seq == 1 else "INVESTIGATIONAL PRODUCT",
                         "EPOCH": "TREATMENT", "DVSTDTC": f"2013-0{seq + 1}"})  # fmt: skip
    dv = pd.DataFrame(rows)
    supp = pd.DataFrame(
        [
            {
                "STUDYID": "CDISCPILOT01",
                "RDOMAIN": "DV",
                "USUBJID": r["USUBJID"],
                "IDVAR": "DVSEQ",
                "IDVARVAL": str(r["DVSEQ"]),
                "QNAM": "DVIMPFL",
                "QLABEL": "Important deviation",
                "QVAL": "Y" if r["DVSEQ"] == 2 else "N",
            }
            for r in rows
        ]  # fmt: skip
    )
    return [write_csv(dv, tmp_path / "dv.csv"), write_csv(supp, tmp_path / "suppdv.csv")]


def test_deviations_take_importance_from_a_suppdv_qualifier(pilot, tmp_path):
    files = [pilot / "dm.xpt", pilot / "ds.xpt", pilot / "sv.xpt", *dv_domains(pilot, tmp_path)]
    prof = profile(tmp_path, **{"sdtm.deviations": {
        "importance_from": "SUPPDV", "qnam": "DVIMPFL",
        "importance": {"Y": "IMPORTANT", "N": "NON_IMPORTANT"}}})  # fmt: skip
    deviations = by_feed(check(files, prof))["deviations"]
    assert deviations.accepted, deviations.problems[:3]
    frame = deviations.frame.sort("deviation_id")
    assert frame.height == 8
    severity = dict(zip(frame["term"], frame["severity"], strict=False))
    assert severity == {
        "Dose not taken as planned": "IMPORTANT",
        "Visit out of window": "NON_IMPORTANT",
    }
    assert frame["occurred_date_precision"].unique().to_list() == ["month"]  # 2013-02: partial
    dm = read(pilot, "dm").set_index("USUBJID")
    assert all(
        dm.SITEID[s] == site for s, site in zip(frame["subject_id"], frame["site_id"], strict=True)
    )


def test_deviations_take_importance_from_a_dvcat_map_and_refuse_an_unmapped_category(
    pilot, tmp_path
):
    files = [pilot / "dm.xpt", pilot / "ds.xpt", pilot / "sv.xpt", dv_domains(pilot, tmp_path)[0]]
    prof = profile(tmp_path, **{"sdtm.deviations": {
        "importance_from": "DVCAT", "importance": {"INVESTIGATIONAL PRODUCT": "IMPORTANT"}}})  # fmt: skip
    deviations = by_feed(check(files, prof))["deviations"]
    assert [(t.rule, t.column, t.count) for t in deviations.totals] == [
        ("value.enum", "severity", 4)
    ]
    assert {p.value for p in deviations.problems} == {"VISIT SCHEDULE"}


def test_screen_failure_from_armcd(pilot, tmp_path):
    prof = profile(tmp_path, **{"sdtm.subjects.screen_failure": "ARMCD",
                                "sdtm.subjects.screen_failure_armcd": ["Scrnfail"]})  # fmt: skip
    subjects = by_feed(check([pilot / "dm.xpt", pilot / "ds.xpt", pilot / "sv.xpt"], prof))[
        "subjects"
    ]
    assert subjects.accepted
    assert subjects.frame["screen_failed_date"].is_not_null().sum() == 52


def test_sdtm_profile_mistakes_name_the_key(tmp_path):
    with pytest.raises(ProfileError, match=r"sdtm\.disposition\.term_map\.X"):
        profile(tmp_path, **{"sdtm.disposition.term_map": {"X": "NOT A TERM"}})
    with pytest.raises(ProfileError, match=r"sdtm\.subjects\.screened_date"):
        profile(tmp_path, **{"sdtm.subjects.screened_date": ["DMDTC"]})
    with pytest.raises(ProfileError, match=r"sdtm\.deviations\.qnam"):
        profile(
            tmp_path,
            **{"sdtm.deviations": {"importance_from": "SUPPDV", "importance": {"Y": "IMPORTANT"}}},
        )


def test_an_sdtm_profile_is_xport_or_csv_and_its_visit_regex_valid(tmp_path):
    with pytest.raises(ProfileError, match=r"file\.type"):
        profile(tmp_path, file={"type": "xlsx", "sheet": "DM"})
    with pytest.raises(ProfileError, match=r"sdtm\.subjects\.screening_visit"):
        profile(tmp_path, **{"sdtm.subjects.screening_visit": "(SCREEN"})


def test_an_unforeseen_failure_rejects_the_delivery_instead_of_raising(
    pilot, tmp_path, monkeypatch
):
    import ingest.sdtm as sdtm

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(sdtm, "_subjects_rows", broken)  # a bug nobody foresaw, simulated
    delivery = check([pilot / "dm.xpt", pilot / "ds.xpt", pilot / "sv.xpt"], profile(tmp_path))
    assert not delivery.accepted
    assert [p.rule for p in delivery.problems] == ["file.unreadable"]
    assert "ZeroDivisionError: boom" in delivery.problems[0].message


def test_the_pilot_feeds_load_through_the_ledger_into_raw_tables(pilot, tmp_path):
    """What the adapter accepts fits the warehouse as it is: the ledger's load_accepted inserts
    the rows (demographics and date precisions included) and makes each feed current."""
    import duckdb

    from ingest import warehouse

    delivery = check([pilot / "dm.xpt", pilot / "ds.xpt", pilot / "sv.xpt"], profile(tmp_path))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    warehouse.ensure_schema(con)
    loaded = {}
    for result in delivery.results:
        if not result.accepted:
            continue
        delivery_id = warehouse.next_delivery_id(con)
        status = warehouse.load_accepted(con, delivery_id, result, received_at=RECEIVED,
                                         processed_at=RECEIVED, stored_path=str(result.path))  # fmt: skip
        loaded[result.feed] = status
    assert loaded == {"sites": "ACCEPTED", "subjects": "ACCEPTED", "visits": "ACCEPTED"}
    rows = con.execute(
        "select count(*), count(randomized_date), count(sex), min(age), "
        "count(distinct screened_date_precision) from raw.subjects"
    ).fetchone()
    dm = read(pilot, "dm")
    assert rows == (len(dm), (dm.RFSTDTC != "").sum(), len(dm), dm.AGE.min(), 1)
    assert warehouse.current_roster(con, "SMO-PILOT")  # the DM roster is the SMO's roster
    ledger = con.execute(
        "select feed, file_name, row_count from ops.deliveries order by 1"
    ).fetchall()
    sv_rows = len(read(pilot, "sv"))
    assert ledger == [
        ("sites", "dm.xpt", 306),
        ("subjects", "dm.xpt", 306),
        ("visits", "sv.xpt", sv_rows),
    ]


def test_the_delivery_date_comes_from_the_domain_file_names(pilot, tmp_path):
    prof = profile(tmp_path, **{"sdtm.file_pattern": "{domain}_{delivery_date:%Y%m%d}.xpt"})
    paths = []
    for domain, day in (("dm", "20150601"), ("ds", "20150601"), ("sv", "20150601")):
        paths.append(tmp_path / f"{domain}_{day}.xpt")
        shutil.copy(pilot / f"{domain}.xpt", paths[-1])
    delivery = check(paths, prof)
    assert {r.delivery_date for r in delivery.results} == {dt.date(2015, 6, 1)}
    paths[2] = paths[2].rename(tmp_path / "sv_20150608.xpt")
    delivery = check(paths, prof)
    assert [p.rule for p in delivery.problems] == ["file.name_unrecognized"]
    assert "different delivery dates" in delivery.problems[0].message


def test_domain_is_a_placeholder_of_sdtm_patterns_only(tmp_path):
    with pytest.raises(ProfileError, match="belongs in sdtm.file_pattern only"):
        profile(
            tmp_path, feeds={"visits": {"file_pattern": "{domain}.csv", "scope": "all_studies"}}
        )


def test_a_file_of_no_feed_and_no_domain_says_the_profile_also_reads_sdtm(tmp_path):
    from ingest.gate import check_delivery

    stray = tmp_path / "notes.txt"
    stray.write_text("hello\n")
    result = check_delivery(stray, profile(tmp_path), received_at=RECEIVED, roster=None)
    assert [t.rule for t in result.totals] == ["file.name_unrecognized"]
    assert "also reads CDISC SDTM domain files" in result.problems[0].message
