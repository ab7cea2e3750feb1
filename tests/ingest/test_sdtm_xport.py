"""SAS XPORT (CDISC SDTM) as a delivery format, on the real CDISCPILOT01 SV domain."""

from __future__ import annotations

import datetime as dt
import shutil

import yaml

from ingest.gate import check_delivery
from ingest.profiles import load_profile

PROFILE = {
    "smo_id": "SMO-PILOT",
    "profile_version": "1",
    "file": {"type": "xport", "encoding": "latin-1"},
    "date_format": "%Y-%m-%d",
    "feeds": {
        "visits": {
            "file_pattern": "sv_{delivery_date:%Y%m%d}.xpt",
            "scope": "all_studies",
            "columns": {
                "STUDYID": "study_id",
                "USUBJID": "subject_id",
                "VISITNUM": "visit_id",
                "VISIT": "visit_name",
                "SVSTDTC": "actual_date",
            },  # fmt: skip
            "constants": {"status": "COMPLETED"},
            "drop": ["DOMAIN", "VISITDY", "SVENDTC"],
        }
    },
}


def test_sdtm_sv_domain_is_read_and_its_real_duplicate_visit_found(shared_data, tmp_path):
    """All 3,559 SV records parse; the pilot data really holds one duplicated visit key."""
    source = shared_data / "sdtm" / "cdiscpilot01" / "sv.xpt"
    delivery = tmp_path / "sv_20150601.xpt"
    shutil.copy(source, delivery)  # a copy in a temp dir, never into the repository
    profile_path = tmp_path / "pilot.yaml"
    profile_path.write_text(yaml.safe_dump(PROFILE))
    result = check_delivery(
        delivery, load_profile(profile_path), received_at=dt.datetime(2015, 6, 1), roster=None
    )
    assert result.row_count == 3559  # every SV record (shared/data README)
    assert [(t.rule, t.count) for t in result.totals] == [("key.unique", 2)]
    values = {p.value for p in result.problems}
    assert values == {"study_id=CDISCPILOT01, subject_id=01-711-1143, visit_id=9.2"}
    assert {p.row for p in result.problems} == {2555, 2556}  # records 2555 and 2556 of the file


def test_sdtm_visits_without_the_duplicate_are_accepted(shared_data, tmp_path):
    import pandas as pd

    frame = pd.read_sas(
        shared_data / "sdtm" / "cdiscpilot01" / "sv.xpt", format="xport", encoding="latin-1"
    )
    frame = frame.drop_duplicates(["USUBJID", "VISITNUM"])
    csv_profile = {**PROFILE, "file": {"type": "csv"}}
    csv_profile["feeds"] = {
        "visits": {**PROFILE["feeds"]["visits"], "file_pattern": "sv_{delivery_date:%Y%m%d}.csv"}
    }
    delivery = tmp_path / "sv_20150601.csv"
    frame.to_csv(delivery, index=False)
    profile_path = tmp_path / "pilot.yaml"
    profile_path.write_text(yaml.safe_dump(csv_profile))
    result = check_delivery(
        delivery, load_profile(profile_path), received_at=dt.datetime(2015, 6, 1), roster=None
    )
    assert result.accepted, result.problems[:3]
    assert result.frame.height == 3558
    assert result.frame.get_column("actual_date").max() == dt.date(2015, 3, 5)
