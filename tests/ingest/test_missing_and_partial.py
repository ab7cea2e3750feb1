"""Missing-value tokens (`null_values`), SAS XPORT blanks and ISO 8601 partial dates."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from ingest.gate import check_delivery
from ingest.profiles import ProfileError, load_profile
from ingest.warehouse import ensure_schema

RECEIVED = dt.datetime(2015, 6, 1)


def profile(tmp_path: Path, **extra) -> Path:
    body = {
        "smo_id": "SMO-T",
        "profile_version": 1,
        "date_format": "%Y-%m-%d",
        "feeds": {
            "subjects": {
                "file_pattern": "subjects_{delivery_date:%Y%m%d}.csv",
                "scope": "all_studies",
            }
        },
    }
    for key, value in extra.items():
        if key == "feed":
            body["feeds"]["subjects"].update(value)
        else:
            body[key] = value
    path = tmp_path / "smo.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def delivery(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "subjects_20150601.csv"
    header = "smo_id,study_id,site_id,subject_id,screened_date,consent_date,screen_fail_reason"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def check(path: Path, profile_path: Path):
    return check_delivery(path, load_profile(profile_path), received_at=RECEIVED, roster=None)


ROWS = ("SMO-T,S1,701,01-701-1,2014-03-05,NA,NA", "SMO-T,S1,701,01-701-2,2014-03-06, NA ,x")


def test_na_is_a_value_unless_the_profile_declares_it_missing(tmp_path):
    path = delivery(tmp_path, *ROWS)
    refused = check(path, profile(tmp_path))
    assert [(t.rule, t.column, t.count) for t in refused.totals] == [
        ("value.type", "consent_date", 2)
    ]
    accepted = check(path, profile(tmp_path, file={"null_values": ["", "NA"]}))
    assert accepted.accepted, accepted.problems
    assert accepted.frame["consent_date"].to_list() == [None, None]
    # every column, not only dates; other text is untouched
    assert accepted.frame["screen_fail_reason"].to_list() == [None, "x"]


def test_null_values_must_be_a_list_of_texts(tmp_path):
    with pytest.raises(ProfileError, match=r"file\.null_values"):
        load_profile(profile(tmp_path, file={"null_values": "NA"}))


def test_partial_dates_are_rejected_by_default_with_a_clear_message(tmp_path):
    path = delivery(tmp_path, "SMO-T,S1,701,01-701-1,2014-03,,", "SMO-T,S1,701,01-701-2,2014,,")
    result = check(path, profile(tmp_path))
    assert [(t.rule, t.column, t.count) for t in result.totals] == [
        ("value.type", "screened_date", 2)
    ]
    assert all("partial ISO 8601 date" in p.message for p in result.problems)


def test_partial_dates_read_as_first_day_with_their_precision(tmp_path):
    path = delivery(
        tmp_path,
        "SMO-T,S1,701,01-701-1,2014-03,2014,",
        "SMO-T,S1,701,01-701-2,2014-03-06,,",
    )
    result = check(path, profile(tmp_path, partial_dates="first_day"))
    assert result.accepted, result.problems
    frame = result.frame
    assert frame["screened_date"].to_list() == [dt.date(2014, 3, 1), dt.date(2014, 3, 6)]
    assert frame["screened_date_precision"].to_list() == ["month", "day"]
    assert frame["consent_date"].to_list() == [dt.date(2014, 1, 1), None]
    assert frame["consent_date_precision"].to_list() == ["year", None]


def test_first_day_still_refuses_what_is_not_iso_8601(tmp_path):
    path = delivery(tmp_path, "SMO-T,S1,701,01-701-1,2014-3,,", "SMO-T,S1,701,01-701-2,14-03,,")
    result = check(path, profile(tmp_path, partial_dates="first_day"))
    assert [(t.rule, t.count) for t in result.totals] == [("value.type", 2)]


def test_first_day_needs_the_iso_date_format(tmp_path):
    with pytest.raises(ProfileError, match="partial_dates: first_day reads ISO 8601"):
        load_profile(profile(tmp_path, partial_dates="first_day", date_format="%d/%m/%Y"))
    with pytest.raises(ProfileError, match=r"feeds\.subjects\.partial_dates"):
        load_profile(profile(tmp_path, feed={"partial_dates": "guess"}))


def test_raw_tables_carry_precision_columns_also_in_an_older_warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema raw")
    con.execute("create table raw.subjects (smo_id varchar, screened_date date)")  # older layout
    ensure_schema(con)
    columns = {r[0] for r in con.execute("describe raw.subjects").fetchall()}
    assert {"screened_date_precision", "consent_date_precision"} <= columns
    columns = {r[0] for r in con.execute("describe raw.visits").fetchall()}
    assert "actual_date_precision" in columns


def test_xport_blanks_are_missing_values(shared_data, tmp_path):
    """The pilot's DM: RFSTDTC is a SAS blank for its 52 screen failures; RFICDTC is blank."""
    source = shared_data / "sdtm" / "cdiscpilot01" / "dm.xpt"
    path = tmp_path / "dm_20150601.xpt"
    shutil.copy(source, path)
    body = {
        "smo_id": "SMO-PILOT",
        "profile_version": 1,
        "file": {"type": "xport", "encoding": "latin-1"},
        "date_format": "%Y-%m-%d",
        "feeds": {
            "subjects": {
                "file_pattern": "dm_{delivery_date:%Y%m%d}.xpt",
                "scope": "all_studies",
                "columns": {
                    "STUDYID": "study_id",
                    "SITEID": "site_id",
                    "USUBJID": "subject_id",
                    "DMDTC": "screened_date",
                    "RFICDTC": "consent_date",
                    "RFSTDTC": "randomized_date",
                },  # fmt: skip
                "drop": [
                    "DOMAIN",
                    "SUBJID",
                    "RFENDTC",
                    "RFXSTDTC",
                    "RFXENDTC",
                    "RFPENDTC",
                    "DTHDTC",
                    "DTHFL",
                    "AGE",
                    "AGEU",
                    "SEX",
                    "RACE",
                    "ETHNIC",
                    "ARMCD",
                    "ARM",
                    "ACTARMCD",
                    "ACTARM",
                    "COUNTRY",
                    "DMDY",
                ],  # fmt: skip
            }
        },
    }
    profile_path = tmp_path / "pilot.yaml"
    profile_path.write_text(yaml.safe_dump(body))
    result = check(path, profile_path)
    assert result.accepted, result.problems[:3]
    assert result.frame.height == 306
    assert result.frame["consent_date"].null_count() == 306
    assert result.frame["randomized_date"].null_count() == 52
