"""A profile mistake is a ProfileError naming the file and the key, caught at load time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from ingest.profiles import ProfileError, load_profile

VALID = {
    "smo_id": "SMO-T",
    "profile_version": 3,
    "file": {"type": "csv", "delimiter": ";", "encoding": "cp1252"},
    "date_format": "%d/%m/%Y",
    "feeds": {
        "subjects": {
            "file_pattern": "subj_{study_id}_{delivery_date:%Y%m%d}.csv",
            "scope": "study",
            "columns": {"Centro": "site_id", "Paciente": "subject_id", "Cribado": "screened_date"},
            "date_formats": {"screened_date": "%d-%b-%Y"},
        },
        "sites": {
            "file_pattern": "centros_*_{delivery_date:%Y%m%d}.xlsx",
            "scope": "all_studies",
            "file": {"type": "xlsx", "sheet": "Centros", "header_row": 4},
            "codes": {"status": {"Activo": "ACTIVATED"}},
        },
    },
}


def write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "smo.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True))
    return path


def changed(path_keys: list[str], value) -> dict:
    body = yaml.safe_load(yaml.safe_dump(VALID))
    target = body
    for key in path_keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path_keys[-1]]
    else:
        target[path_keys[-1]] = value
    return body


def test_valid_profile_loads_and_matches_names(tmp_path):
    profile = load_profile(write(tmp_path, VALID))
    feed, fields = profile.feed_for("subj_ST-1_20261116.csv")
    assert (feed.feed, fields["study_id"]) == ("subjects", "ST-1")
    assert profile.parse_delivery_date(feed, fields) == dt.date(2026, 11, 16)
    assert feed.date_formats["screened_date"] == "%d-%b-%Y"
    assert feed.constants["smo_id"] == "SMO-T"
    assert profile.feeds["sites"].file.header_row == 4
    assert profile.feeds["sites"].file.delimiter == ";"  # inherited default
    assert profile.feed_for("other_20261116.csv") is None


BROKEN = [
    (["feeds", "subjects", "colums"], {"a": "b"}, "feeds.subjects.colums"),
    (["feeds", "subjcts"], {"file_pattern": "x"}, "feeds.subjcts"),
    (["feeds", "subjects", "columns", "Centro"], "site", "feeds.subjects.columns.Centro"),
    (["feeds", "subjects", "date_formats", "screened_date"], "dd/mm/yyyy", "feeds.subjects.date_formats.screened_date"),
    (["feeds", "subjects", "date_formats", "screened_dte"], "%d/%m/%Y", "feeds.subjects.date_formats.screened_dte"),
    (["feeds", "sites", "file", "sheet"], KeyError, "feeds.sites.file.sheet"),
    (["feeds", "sites", "codes", "status", "Activo"], "ACTIVE", "feeds.sites.codes.status.Activo"),
    (["feeds", "subjects", "scope"], "all_studies_x", "feeds.subjects.scope"),
    (["feeds", "subjects", "file_pattern"], "subj_{site}.csv", "feeds.subjects.file_pattern"),
    (["file", "encoding"], "ebcdic", "file.encoding"),
    (["smo_id"], "SMO T!", "smo_id"),
    (["profile_version"], KeyError, "profile_version"),
]  # fmt: skip


@pytest.mark.parametrize(("keys", "value", "named"), BROKEN, ids=[b[2] for b in BROKEN])
def test_profile_mistake_names_file_and_key(tmp_path, keys, value, named):
    path = write(tmp_path, changed(keys, value))
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert raised.value.key == named
    assert str(path) in str(raised.value)


def test_invalid_yaml_is_a_profile_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("smo_id: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(path)
