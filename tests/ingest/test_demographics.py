"""Subject demographics at the gate: CDISC terms after each SMO's codes, age bands, SDTM DM.

A label the profile does not map, or a malformed band, rejects the file whole naming row,
column, rule and value; every dialect's labels read back to exactly the CDISC values the
generator drew; the CDISC pilot's DM arrives as controlled terms.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import PROJECT_ROOT
from expectations.contracts import POLARS_TYPES, feed_schema, validate
from expectations.feeds import ETHNIC_TERMS, FEEDS, RACE_TERMS, SEX_TERMS
from ingest.gate import check_delivery
from ingest.profiles import ProfileError, load_profile
from ingest.sdtm import check_sdtm_delivery
from synthetic.bad_deliveries import _Base
from synthetic.dialects import DIALECTS, write_feed

RECEIVED = dt.datetime(2026, 11, 16, 6)
DEMOGRAPHICS = ("sex", "age", "age_group", "race", "ethnic")
TERMS = {"sex": SEX_TERMS, "race": RACE_TERMS, "ethnic": ETHNIC_TERMS}
SMO_OF = {name: f"SMO-{name.upper()}" for name in DIALECTS}


@pytest.fixture(scope="module")
def base() -> _Base:
    return _Base(7)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("profiles")
    for name, dialect in DIALECTS.items():
        body = dialect.profile(SMO_OF[name])
        (folder / f"{SMO_OF[name]}.yaml").write_text(yaml.safe_dump(body, allow_unicode=True))
    return folder


def deliver(base, profiles, folder: Path, dialect: str, rows: list[dict]):
    """Write `rows` as the dialect's subjects file and run the gate on it."""
    smo_id = SMO_OF[dialect]
    study_id = rows[0]["study_id"]
    name = DIALECTS[dialect].file_name("subjects", RECEIVED.date(), study_id)
    path = write_feed(DIALECTS[dialect], "subjects", folder / name, rows)
    profile = load_profile(profiles / f"{smo_id}.yaml")
    return check_delivery(path, profile, received_at=RECEIVED, roster=base.roster(smo_id))


def first_row(dialect: str) -> int:
    """The spreadsheet row of the first data row (NORDIC: below a title block)."""
    return DIALECTS[dialect].header_row + 1


# -- the contract -----------------------------------------------------------------------------


def test_contract_refuses_values_outside_the_terms_and_malformed_bands():
    good = {"sex": "F", "age": 70, "age_group": "65-74", "race": "ASIAN", "ethnic": "UNKNOWN"}
    bad = [
        ("sex", "Female", "value.enum"),
        ("race", "Caucasian", "value.enum"),
        ("ethnic", "Latino", "value.enum"),
        ("age_group", "65 to 74", "value.age_band"),
        ("age_group", "74-65", "value.age_band"),  # lower above upper
        ("age_group", "65–74", "value.age_band"),  # an en dash
        ("age_group", "75+ years", "value.age_band"),
    ]
    spec = FEEDS["subjects"]
    rows = [{**good, column: value} for column, value, _ in bad] + [
        good,
        {**good, "age_group": "75+"},
        {**good, "age_group": "18-18"},
    ]
    base_row = {c: None for c in spec.column_names} | {
        "smo_id": "S", "study_id": "ST", "site_id": "X", "screened_date": dt.date(2026, 1, 1)
    }  # fmt: skip
    frame = pl.DataFrame(
        [base_row | {"subject_id": f"P{i}"} | row for i, row in enumerate(rows)],
        schema={c.name: POLARS_TYPES[c.dtype] for c in spec.columns},
    )
    failures = validate(frame, feed_schema("subjects"))
    got = sorted(failures.select("row_index", "column", "rule").iter_rows())
    assert got == [(i, column, rule) for i, (column, _, rule) in enumerate(bad)]


@pytest.mark.parametrize(
    ("dialect", "column", "value", "rule"),
    [
        ("iberia", "sex", "Femenino", "value.enum"),
        ("americas", "race", "Caucasian", "value.enum"),
        ("sakura", "ethnic", "ラテン系", "value.enum"),
        ("nordic", "age_group", "65-74 years", "value.age_band"),
        ("nordic", "age_group", "74-65", "value.age_band"),
    ],
)
def test_the_gate_names_file_row_column_rule_and_value(
    base, profiles, tmp_path, dialect, column, value, rule
):
    _, rows = base.rows(SMO_OF[dialect], "subjects")
    rows[3][column] = value  # not in the dialect's codes: written as is
    result = deliver(base, profiles, tmp_path, dialect, rows)
    assert not result.accepted and result.frame is None
    problems = [p for p in result.problems if p.rule == rule]
    assert [(p.row, p.column, p.value) for p in problems] == [
        (first_row(dialect) + 3, column, value)
    ]
    header = DIALECTS[dialect].feeds["subjects"].headers[column]
    assert value in problems[0].message and header in problems[0].message
    assert [(t.rule, t.column, t.count) for t in result.totals] == [(rule, column, 1)]


def test_codes_map_an_smos_age_band_wording_and_the_validator_checks_band_targets(tmp_path):
    body = DIALECTS["nordic"].profile("SMO-NORDIC")
    assert body["feeds"]["subjects"]["codes"]["age_group"]["65–74 år"] == "65-74"
    for target, problem in [("65 to 74", "not an age band"), ("80-70", "not an age band")]:
        body["feeds"]["subjects"]["codes"]["age_group"] = {"70–80 år": target}
        path = tmp_path / "SMO-NORDIC.yaml"
        path.write_text(yaml.safe_dump(body, allow_unicode=True))
        with pytest.raises(ProfileError, match=rf"feeds\.subjects\.codes\.age_group.*{problem}"):
            load_profile(path)


# -- every dialect's labels round-trip --------------------------------------------------------


def _labels(dialect: str, column: str) -> list[str]:
    """The canonical values a dialect has labels for (or, without codes, the contract's)."""
    codes = DIALECTS[dialect].feeds["subjects"].codes.get(column)
    return sorted(codes) if codes else list(TERMS.get(column, ()))


@st.composite
def deliveries(draw, rows_of):
    dialect = draw(st.sampled_from(sorted(DIALECTS)))
    rows = rows_of(dialect)
    chosen = draw(st.lists(st.sampled_from(range(len(rows))), min_size=1, max_size=12, unique=True))
    carried = [c for c in DEMOGRAPHICS if c in DIALECTS[dialect].feeds["subjects"].headers]
    out = []
    for i in sorted(chosen):
        row = dict(rows[i])
        for column in carried:
            if column == "age":
                row[column] = draw(st.one_of(st.none(), st.integers(0, 120)))
            else:
                options = _labels(dialect, column)
                row[column] = draw(st.one_of(st.none(), st.sampled_from(options)))
        out.append(row)
    return dialect, carried, out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_every_dialects_labels_load_as_the_cdisc_values_drawn(base, profiles, data):
    def rows_of(dialect):
        return base.rows(SMO_OF[dialect], "subjects")[1]

    dialect, carried, rows = data.draw(deliveries(rows_of))
    with tempfile.TemporaryDirectory() as folder:
        result = deliver(base, profiles, Path(folder), dialect, rows)
    assert result.accepted, result.problems[:3]
    got = result.frame.select("subject_id", *DEMOGRAPHICS).to_dicts()
    want = [
        {"subject_id": r["subject_id"], **{c: r[c] if c in carried else None for c in DEMOGRAPHICS}}
        for r in rows
    ]
    assert got == want


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_an_unmapped_label_rejects_the_file_naming_row_column_and_value(base, profiles, data):
    dialect = data.draw(st.sampled_from(sorted(DIALECTS)))
    coded = sorted(DIALECTS[dialect].feeds["subjects"].codes.keys() & set(DEMOGRAPHICS))
    column = data.draw(st.sampled_from(coded))
    known = set(DIALECTS[dialect].feeds["subjects"].codes[column].values()) | set(
        TERMS.get(column, ())
    )
    label = data.draw(
        st.text(st.characters(categories=["L"]), min_size=2, max_size=12).filter(
            lambda t: t not in known and t.strip() == t and writable(dialect, t)
        )
    )
    _, rows = base.rows(SMO_OF[dialect], "subjects")
    index = data.draw(st.integers(0, len(rows) - 1))
    rows[index][column] = label
    with tempfile.TemporaryDirectory() as folder:
        result = deliver(base, profiles, Path(folder), dialect, rows)
    assert not result.accepted and result.frame is None
    rule = "value.age_band" if column == "age_group" else "value.enum"
    assert [(p.rule, p.row, p.column, p.value) for p in result.problems] == [
        (rule, first_row(dialect) + index, column, label)
    ]


def writable(dialect: str, text: str) -> bool:
    """Whether the SMO's file encoding can hold `text` (a workbook holds anything)."""
    d = DIALECTS[dialect]
    try:
        text.encode(d.encoding if d.file_type == "csv" else "utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- SDTM DM ----------------------------------------------------------------------------------

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "cdiscpilot01.yaml"


@pytest.fixture
def pilot(shared_data) -> Path:
    return shared_data / "sdtm" / "cdiscpilot01"


def sdtm_profile(tmp_path: Path, codes: dict | None = None):
    body = yaml.safe_load(EXAMPLE.read_text())
    if codes is not None:
        body["sdtm"]["subjects"]["codes"] = codes
    path = tmp_path / "pilot.yaml"
    path.write_text(yaml.safe_dump(body))
    return load_profile(path)


def pilot_subjects(files, profile):
    delivery = check_sdtm_delivery(
        list(files), profile, received_at=dt.datetime(2015, 6, 1), roster=None
    )
    return next(r for r in delivery.results if r.feed == "subjects")


def read_dm(pilot: Path) -> pd.DataFrame:
    return pd.read_sas(pilot / "dm.xpt", format="xport", encoding="latin-1")


def test_pilot_dm_sex_race_ethnic_arrive_as_controlled_terms(pilot, tmp_path):
    subjects = pilot_subjects(
        [pilot / "dm.xpt", pilot / "ds.xpt", pilot / "sv.xpt"], sdtm_profile(tmp_path)
    )
    assert subjects.accepted, subjects.problems[:3]
    dm = read_dm(pilot)
    got = subjects.frame.select("subject_id", "sex", "age", "race", "ethnic").sort("subject_id")
    want = pl.DataFrame(
        {
            "subject_id": dm.USUBJID.tolist(),
            "sex": dm.SEX.tolist(),
            "age": dm.AGE.astype(int).tolist(),
            "race": dm.RACE.tolist(),
            "ethnic": dm.ETHNIC.tolist(),
        }
    ).sort("subject_id")
    assert got.equals(want)
    assert set(got["sex"]) <= set(SEX_TERMS) and set(got["race"]) <= set(RACE_TERMS)
    assert set(got["ethnic"]) <= set(ETHNIC_TERMS)
    # Shares compute: one per subject, every subject counted once.
    shares = got.group_by("sex").len().with_columns(share=pl.col("len") / pl.col("len").sum())
    assert shares["len"].sum() == len(dm) and abs(shares["share"].sum() - 1) < 1e-12


def test_an_sdtm_sender_with_its_own_labels_maps_them_or_is_rejected(pilot, tmp_path):
    dm = read_dm(pilot)
    for column in ("STUDYID", "USUBJID", "SEX", "RACE", "ETHNIC"):
        dm[column] = dm[column].astype(str)
    dm["AGE"] = dm.AGE.astype("Int64")  # as SAS exports a whole number
    labels = {"F": "Female", "M": "Male"}
    dm["SEX"] = dm.SEX.map(labels)
    csv_dm = tmp_path / "dm.csv"
    dm.to_csv(csv_dm, index=False)
    files = [csv_dm, pilot / "ds.xpt", pilot / "sv.xpt"]

    refused = pilot_subjects(files, sdtm_profile(tmp_path))
    assert not refused.accepted and refused.frame is None
    assert [(t.rule, t.column, t.count) for t in refused.totals] == [("value.enum", "sex", len(dm))]
    first = refused.problems[0]
    assert (first.row, first.value) == (2, dm.SEX.iloc[0])  # DM's first record, as written

    mapped = pilot_subjects(files, sdtm_profile(tmp_path, {"SEX": {"Female": "F", "Male": "M"}}))
    assert mapped.accepted, mapped.problems[:3]
    original = read_dm(pilot)
    assert dict(zip(mapped.frame["subject_id"], mapped.frame["sex"], strict=True)) == dict(
        zip(original.USUBJID, original.SEX, strict=True)
    )


def test_sdtm_demographic_codes_are_checked_when_the_profile_loads(tmp_path):
    with pytest.raises(ProfileError, match=r"sdtm\.subjects\.codes\.SEX\.Female.*not one of"):
        sdtm_profile(tmp_path, {"SEX": {"Female": "FEMALE"}})
    with pytest.raises(ProfileError, match=r"sdtm\.subjects\.codes\.AGE"):
        sdtm_profile(tmp_path, {"AGE": {"80+": "80"}})
