"""Flattening real ClinicalTrials.gov records, and reading the website's export files.

Reference data: ../shared/data/ctgov/exports (786 full records from four real exports) and
urology_635.csv, the website's CSV download of the same 635 studies as urology_635.json.zip.
"""

from __future__ import annotations

import csv
import json
import re
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

import ingest.registry.sources as sources
from ingest.registry import (
    RegistryError,
    flatten_studies,
    iter_bulk_zip,
    iter_json_download,
    normalise_facility,
    normalise_mesh_id,
    parse_partial_date,
)
from ingest.registry.client import study_nct_id


def all_records(export_records: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [record for records in export_records.values() for record in records]


def raw_locations(record: dict[str, Any]) -> list[Any]:
    module = record["protocolSection"].get("contactsLocationsModule", {})
    return module.get("locations", [])


# --------------------------------------------------------------------------- real exports


def test_flatten_every_export_record(export_records):
    records = all_records(export_records)
    assert [len(v) for v in export_records.values()] == [100, 50, 1, 635]
    tables = flatten_studies(records)

    assert tables.records_read == 786
    assert tables.skipped_records == 0 and tables.duplicate_records == 0
    studies = tables.studies
    assert studies.height == 786 and studies["nct_id"].n_unique() == 786
    assert studies["nct_id"].to_list() == [study_nct_id(r) for r in records]

    # one location row per entry of each record's `locations` (the 2023 export's duplicate
    # `locations_nested` key is unknown and ignored)
    expected_rows = sum(len(raw_locations(r)) for r in records)
    assert tables.locations.height == expected_rows
    assert studies["location_count"].sum() == expected_rows
    reg = flatten_studies(export_records["registered_2023_06_50.json"])
    assert reg.locations.height == 2083
    nct02513394 = tables.locations.filter(pl.col("nct_id") == "NCT02513394")
    assert nct02513394.height == 437 and nct02513394["seq"].to_list() == list(range(1, 438))

    # zip codes stay strings, exactly as registered (leading zeros, junk like "29406,")
    assert tables.locations.schema["zip"] == pl.String
    raw_zips = [loc.get("zip") for r in records for loc in raw_locations(r)]
    assert tables.locations["zip"].to_list() == raw_zips
    assert any(z and z.startswith("0") for z in raw_zips)

    # status is present only while a study recruits
    raw_status = [loc.get("status") for r in records for loc in raw_locations(r)]
    assert tables.locations["status"].to_list() == raw_status

    # dates: each precision matches the raw string's shape
    for column, struct in (
        ("start_date", "startDateStruct"),
        ("primary_completion_date", "primaryCompletionDateStruct"),
        ("completion_date", "completionDateStruct"),
    ):
        raw = [r["protocolSection"]["statusModule"].get(struct, {}).get("date") for r in records]
        shapes = [None if d is None else {10: "day", 7: "month", 4: "year"}[len(d)] for d in raw]
        assert studies[f"{column}_precision"].to_list() == shapes
        assert [
            None if d is None else d.isoformat()[: len(r)]
            for d, r in zip(studies[column].to_list(), raw, strict=True)
        ] == raw
    assert (studies["start_date_precision"] == "month").sum() > 300  # about a third of records

    # sponsors: one lead per study, every collaborator
    sponsors = tables.sponsors
    assert (sponsors["role"] == "lead").sum() == 786
    collaborators = sum(
        len(r["protocolSection"]["sponsorCollaboratorsModule"].get("collaborators", []))
        for r in records
    )
    assert (sponsors["role"] == "collaborator").sum() == collaborators

    interventions = sum(
        len(r["protocolSection"].get("armsInterventionsModule", {}).get("interventions", []))
        for r in records
    )
    assert tables.interventions.height == interventions
    assert tables.interventions["type"].null_count() == 0

    reported = sum(
        len(r["protocolSection"]["conditionsModule"].get("conditions", [])) for r in records
    )
    meshes = sum(
        len(r.get("derivedSection", {}).get("conditionBrowseModule", {}).get("meshes", []))
        for r in records
    )
    kinds = tables.conditions["kind"].value_counts().sort("kind")
    assert dict(kinds.iter_rows()) == {"mesh": meshes, "reported": reported}

    # the pyarrow view keeps the types
    arrow = tables.to_arrow()
    assert pa.types.is_large_string(arrow["locations"].schema.field("zip").type) or (
        pa.types.is_string(arrow["locations"].schema.field("zip").type)
    )
    assert pa.types.is_date32(arrow["studies"].schema.field("start_date").type)


def test_urology_matches_the_website_csv(exports, export_records):
    """NCT id, status, phases, enrollment and start date agree with the website's CSV."""
    with (exports / "urology_635.csv").open(newline="", encoding="utf-8-sig") as fh:
        csv_rows = {row["NCT Number"]: row for row in csv.DictReader(fh)}
    studies = flatten_studies(export_records["urology_635.json.zip"]).studies
    assert studies.height == len(csv_rows) == 635
    assert set(studies["nct_id"]) == set(csv_rows)

    def as_csv_date(value: date | None, precision: str | None) -> str:
        if value is None:
            return ""
        return value.isoformat()[: {"day": 10, "month": 7, "year": 4}[precision]]

    mismatches = []
    for row in studies.iter_rows(named=True):
        expected = csv_rows[row["nct_id"]]
        got = {
            "Study Status": row["overall_status"] or "",
            "Phases": row["phases_joined"] or "",
            "Enrollment": "" if row["enrollment_count"] is None else str(row["enrollment_count"]),
            "Start Date": as_csv_date(row["start_date"], row["start_date_precision"]),
        }
        for column, value in got.items():
            if expected[column] != value:
                mismatches.append((row["nct_id"], column, expected[column], value))
    assert mismatches == []
    # the comparison covers the interesting cases
    assert (studies["phases_joined"] == "PHASE2|PHASE3").sum() > 0
    assert studies["phases_joined"].null_count() > 0
    assert (studies["start_date_precision"] == "month").sum() > 0


def test_projected_search_results_flatten(load_response):
    """Search pages requested with a `fields` projection carry partial structs: nulls, no error."""
    studies = []
    for stem in ("search_phelan_limit5", "search_keytruda_limit3", "search_age_count"):
        studies += load_response(stem)["studies"]
    tables = flatten_studies(studies)
    assert tables.studies.height == len(studies)
    assert tables.studies["has_results"].null_count() == len(studies)  # not requested


def test_mesh_ids_are_unpadded_consistently_across_export_vintages(export_records):
    conditions = flatten_studies(all_records(export_records)).conditions.filter(
        pl.col("kind") == "mesh"
    )
    assert conditions["mesh_id_raw"].null_count() == 0
    assert all(re.fullmatch(r"[CD](\d{6}|000\d{6})", m) for m in conditions["mesh_id"])

    # nsclc_100 (2025) already writes the modern mixed form; the older exports pad everything.
    # The same MeSH term must get the same normalised id whatever the vintage.
    modern = {}
    for record in export_records["nsclc_100.json"]:
        browse = record.get("derivedSection", {})
        for module in ("conditionBrowseModule", "interventionBrowseModule"):
            for mesh in browse.get(module, {}).get("meshes", []):
                modern[mesh["term"]] = mesh["id"]
    compared = 0
    for name in ("registered_2023_06_50.json", "NCT02513394.json", "urology_635.json.zip"):
        for record in export_records[name]:
            browse = record.get("derivedSection", {})
            for module in ("conditionBrowseModule", "interventionBrowseModule"):
                for mesh in browse.get(module, {}).get("meshes", []):
                    if mesh["term"] in modern:
                        assert len(mesh["id"]) == 10  # padded in the old export
                        assert normalise_mesh_id(mesh["id"]) == modern[mesh["term"]]
                        compared += 1
    assert compared >= 8
    assert normalise_mesh_id("D000006937") == "D006937"
    assert normalise_mesh_id("D006937") == "D006937"
    assert normalise_mesh_id("D000068258") == "D000068258"  # a genuine 10-character id
    assert normalise_mesh_id("C000500026") == "C500026"
    assert normalise_mesh_id("C000594389") == "C000594389"


def test_facility_names_are_normalised(export_records):
    assert normalise_facility("Hôpital Saint-Louis, A.P.-H.P.") == "hopital saint louis a p h p"
    assert normalise_facility("  St. Mary's   Medical\tCenter ") == "st marys medical center"
    assert normalise_facility("Klinikum der Universität München") == (
        "klinikum der universitat munchen"
    )
    assert normalise_facility(r"Site \<1\> \*Research\*") == "site 1 research"
    assert normalise_facility("---") is None

    locations = flatten_studies(all_records(export_records)).locations
    normalised = locations["facility_normalised"].drop_nulls().to_list()
    assert normalised
    for name in normalised:
        assert name == name.strip() and "  " not in name and name == name.casefold()
        assert not re.search(r"[^\w ]|_", name), name
        assert name.isascii() or not re.search(r"[àáâäãåçèéêëìíîïñòóôöõùúûüý]", name)
    # facility_raw is kept untouched
    raw = [loc.get("facility") for r in all_records(export_records) for loc in raw_locations(r)]
    assert locations["facility_raw"].to_list() == raw


def test_repeated_location_rows_are_kept_and_marked():
    loc = {"facility": "Research Site", "city": "Paris", "country": "France"}
    record = {
        "protocolSection": {
            "identificationModule": {"nctId": "NCT00000001"},
            "contactsLocationsModule": {"locations": [loc, dict(loc), {**loc, "city": "Lyon"}]},
        }
    }
    locations = flatten_studies([record]).locations
    assert locations["is_repeat"].to_list() == [False, True, False]
    assert locations["seq"].to_list() == [1, 2, 3]


# --------------------------------------------------------------------------- robustness


def test_partial_dates():
    assert parse_partial_date("2016-07") == (date(2016, 7, 1), "month")
    assert parse_partial_date("2016-07-15") == (date(2016, 7, 15), "day")
    assert parse_partial_date("2016") == (date(2016, 1, 1), "year")
    assert parse_partial_date(" 2019-02 ") == (date(2019, 2, 1), "month")
    for junk in ("2020-13", "2020-02-30", "", "July 2020", None, 2020):
        assert parse_partial_date(junk) == (None, None)


def test_missing_modules_and_wrong_types_give_nulls():
    records: list[Any] = [
        {"protocolSection": {"identificationModule": {"nctId": "NCT00000001"}}},
        "not a record",
        {"protocolSection": {"statusModule": {"overallStatus": "COMPLETED"}}},  # no nctId
        {
            "protocolSection": {
                "identificationModule": {"nctId": "NCT00000002", "briefTitle": 12},
                "statusModule": {
                    "overallStatus": "COMPLETED",
                    "startDateStruct": {"date": "2021"},
                    "completionDateStruct": {"date": "2021-02-31", "type": "ACTUAL"},
                    "lastUpdatePostDateStruct": "2024-01-01",
                },
                "designModule": {
                    "phases": "PHASE3",
                    "enrollmentInfo": {"count": "120"},
                    "futureKey": {"x": 1},
                },
                "sponsorCollaboratorsModule": {"leadSponsor": None, "collaborators": [None]},
                "contactsLocationsModule": {
                    "locations": [{"zip": 2940, "geoPoint": {"lat": "48.1", "lon": 2.3}}, None]
                },
                "conditionsModule": {"conditions": ["X", 3]},
                "armsInterventionsModule": {"interventions": [{"name": "Drug A"}]},
                "someNewModule": {},
            },
            "derivedSection": {"conditionBrowseModule": {"meshes": [{"id": "D000006937"}]}},
            "hasResults": "yes",
        },
    ]
    tables = flatten_studies(records)
    assert tables.records_read == 4 and tables.skipped_records == 2
    first, second = tables.studies.iter_rows(named=True)
    assert first["nct_id"] == "NCT00000001"
    assert first["phases"] == [] and first["phases_joined"] is None
    assert first["start_date"] is None and first["start_date_precision"] is None
    assert first["enrollment_count"] is None and first["has_results"] is None
    assert first["location_count"] == 0

    assert second["brief_title"] == "12"
    assert second["phases"] == []  # a string where a list belongs is ignored
    assert second["enrollment_count"] == 120
    assert (second["start_date"], second["start_date_precision"]) == (date(2021, 1, 1), "year")
    assert second["completion_date"] is None and second["completion_date_type"] == "ACTUAL"
    assert second["last_update_post_date"] is None
    assert second["has_results"] is None and second["location_count"] == 2

    locations = tables.locations.filter(pl.col("nct_id") == "NCT00000002")
    assert locations["zip"].to_list() == ["2940", None]
    assert locations["lat"].to_list() == [None, None] and locations["lon"].to_list() == [2.3, None]
    assert tables.conditions.filter(pl.col("kind") == "reported")["condition"].to_list() == ["X"]
    mesh = tables.conditions.filter(pl.col("kind") == "mesh").row(0, named=True)
    assert (mesh["mesh_id"], mesh["mesh_id_raw"], mesh["mesh_term"]) == (
        "D006937",
        "D000006937",
        None,
    )
    assert tables.interventions.rows() == [("NCT00000002", 1, None, "Drug A")]
    assert tables.sponsors.rows() == [("NCT00000002", "collaborator", 1, None, None)]

    empty = flatten_studies([])
    assert empty.studies.height == 0 and empty.studies.schema["start_date"] == pl.Date
    assert empty.locations.schema["zip"] == pl.String


def test_duplicate_records_keep_the_newest():
    def record(updated: str, city: str) -> dict[str, Any]:
        return {
            "protocolSection": {
                "identificationModule": {"nctId": "NCT00000003"},
                "statusModule": {"lastUpdatePostDateStruct": {"date": updated}},
                "contactsLocationsModule": {"locations": [{"city": city}]},
            }
        }

    other = {"protocolSection": {"identificationModule": {"nctId": "NCT00000004"}}}
    for order in ([0, 1], [1, 0]):
        versions = [record("2024-01-01", "Old"), record("2025-06-01", "New")]
        tables = flatten_studies([versions[order[0]], other, versions[order[1]]])
        assert tables.duplicate_records == 1
        assert sorted(tables.studies["nct_id"]) == ["NCT00000003", "NCT00000004"]
        assert tables.locations["city"].to_list() == ["New"]


# --------------------------------------------------------------------------- export readers


def test_json_download_is_streamed_in_small_chunks(exports, monkeypatch):
    monkeypatch.setattr(sources, "_CHUNK", 97)  # records cross many buffer edges
    for name in ("nsclc_100.json", "registered_2023_06_50.json", "NCT02513394.json"):
        expected = json.loads((exports / name).read_text(encoding="utf-8"))
        expected = expected if isinstance(expected, list) else [expected]
        assert list(iter_json_download(exports / name)) == expected


def test_truncated_json_download_raises(exports, tmp_path: Path):
    data = (exports / "nsclc_100.json").read_bytes()
    broken = tmp_path / "broken.json"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegistryError, match="broken.json"):
        list(iter_json_download(broken))
    html = tmp_path / "error.json"
    html.write_text("<html>Service unavailable</html>")
    with pytest.raises(RegistryError, match="expected a JSON array"):
        list(iter_json_download(html))


def test_bulk_zip_yields_one_record_per_member(exports):
    path = exports / "urology_635.json.zip"
    records = list(iter_bulk_zip(path))
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".json")]
    assert len(records) == len(names) == 635
    assert [f"{study_nct_id(r)}.json" for r in records] == [n.rsplit("/", 1)[-1] for n in names]
