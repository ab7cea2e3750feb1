"""`strip_identifiers`: a profile may strip identifier columns explicitly; they never reach a
table, and what is kept is a redacted copy (CSV, XLSX, XPORT) whose record names the original's
SHA-256. The original bytes are stored nowhere."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import yaml

from ingest.profiles import FileOptions, ProfileError, load_profile
from ingest.readers import read_delivery
from ingest.redact import redact_delivery
from synthetic.bad_deliveries import write_valid_deliveries
from synthetic.dialects import DIALECTS, write_feed

DOB = "Fecha de nacimiento"


@pytest.fixture(scope="session")
def valid(tmp_path_factory) -> dict[str, dict[str, Path]]:
    return write_valid_deliveries(tmp_path_factory.mktemp("valid"))


def sha256(data: bytes | Path) -> str:
    return hashlib.sha256(data.read_bytes() if isinstance(data, Path) else data).hexdigest()


def profile_dict(smo_id: str, **feed_changes) -> dict:
    body = DIALECTS[smo_id.split("-")[1].lower()].profile(smo_id)
    for feed, changes in feed_changes.items():
        body["feeds"][feed].update(changes)
    return body


def write_profile(folder: Path, body: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{body['smo_id']}.yaml"
    path.write_text(yaml.safe_dump(body, allow_unicode=True, sort_keys=False))
    return path


def with_column(
    source: Path, target: Path, *, opts: FileOptions, at: int, header: str, values: list[str]
) -> Path:
    """The delivery with one more column (inserted at `at`), written as the SMO writes CSV."""
    data = source.read_bytes()
    bom = b"\xef\xbb\xbf" if data.startswith(b"\xef\xbb\xbf") else b""
    codec = "utf-16" if opts.encoding == "utf-16" else opts.encoding.replace("-sig", "")
    rows = list(csv.reader(io.StringIO(data[len(bom) :].decode(codec), newline=""),
                           delimiter=opts.delimiter))  # fmt: skip
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=opts.delimiter, lineterminator="\r\n")
    for i, row in enumerate(rows):
        writer.writerow([*row[:at], header if i == 0 else values[(i - 1) % len(values)], *row[at:]])
    target.write_bytes(bom + out.getvalue().encode(codec))
    return target


BIRTH_DATES = [f"{d:02d}/{d % 12 + 1:02d}/19{40 + 3 * d}" for d in range(1, 13)]


# -- the profile ------------------------------------------------------------------------------


def test_profile_strips_only_identifier_columns(tmp_path):
    body = profile_dict("SMO-IBERIA", subjects={"strip_identifiers": [DOB, "Iniciales"]})
    profile = load_profile(write_profile(tmp_path, body))
    assert profile.feeds["subjects"].strip_identifiers == {DOB, "Iniciales"}
    assert profile.feeds["sites"].strip_identifiers == frozenset()

    body["feeds"]["subjects"]["strip_identifiers"] = [DOB, "Observaciones"]
    with pytest.raises(ProfileError) as error:
        load_profile(write_profile(tmp_path, body))
    assert error.value.key == "feeds.subjects.strip_identifiers.Observaciones"
    assert "not recognised as a direct-identifier header" in error.value.problem

    body["feeds"]["subjects"]["strip_identifiers"] = DOB
    with pytest.raises(ProfileError, match="expected a list"):
        load_profile(write_profile(tmp_path, body))


@pytest.mark.parametrize("key", ["drop", "columns"])
def test_an_identifier_cannot_be_dropped_or_mapped(tmp_path, key):
    body = profile_dict("SMO-IBERIA")
    if key == "drop":
        body["feeds"]["subjects"]["drop"] = ["Nombre del paciente"]
    else:
        body["feeds"]["subjects"]["columns"]["Nombre del paciente"] = "screen_fail_reason"
    with pytest.raises(ProfileError) as error:
        load_profile(write_profile(tmp_path, body))
    assert error.value.key == f"feeds.subjects.{key}.Nombre del paciente"
    assert "strip_identifiers" in error.value.problem


# -- redacted copies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("smo_id", "feed", "header"),
    [
        ("SMO-IBERIA", "subjects", DOB),  # cp1252, ';', CRLF
        ("SMO-AMERICAS", "subjects", "Patient Initials"),  # UTF-8 with BOM, ','
        ("SMO-SAKURA", "subjects", "生年月日"),  # UTF-16 (BOM), tab
    ],
)
def test_csv_redaction_gives_back_the_file_without_the_column(
    valid, tmp_path, smo_id, feed, header
):
    opts = load_profile(write_profile(tmp_path, profile_dict(smo_id))).feeds[feed].file
    original = valid[smo_id][feed]
    delivered = with_column(
        original, tmp_path / original.name, opts=opts, at=2, header=header, values=BIRTH_DATES
    )
    copy = tmp_path / "copy"
    assert redact_delivery(delivered, copy, opts, frozenset({header, "Nombre"})) == [header]
    assert copy.read_bytes() == original.read_bytes()  # byte for byte what the SMO would send
    codec = "utf-16-le" if opts.encoding == "utf-16" else opts.encoding.replace("-sig", "")
    assert not any(v.encode(codec) in copy.read_bytes() for v in BIRTH_DATES)

    assert redact_delivery(original, tmp_path / "none", opts, frozenset({header})) == []
    assert not (tmp_path / "none").exists()  # nothing to remove: nothing written


def test_csv_redaction_keeps_quoting_and_a_missing_last_line_break(tmp_path):
    opts = FileOptions(delimiter=";", encoding="cp1252")
    delivered = tmp_path / "in.csv"
    delivered.write_bytes(
        'Centro;Teléfono;"Motivo; nota"\n'
        'IB1;"600 123 456";"dice ""sí""; ok"\n'
        'IB2;;"línea\nsegunda"'.encode("cp1252")
    )
    copy = tmp_path / "out.csv"
    assert redact_delivery(delivered, copy, opts, frozenset({"Teléfono"})) == ["Teléfono"]
    assert copy.read_bytes() == (
        'Centro;"Motivo; nota"\nIB1;"dice ""sí""; ok"\nIB2;"línea\nsegunda"'.encode("cp1252")
    )


def test_xlsx_redaction_deletes_the_column_from_the_sheet(valid, tmp_path):
    dialect = DIALECTS["nordic"]
    feed = dialect.feeds["subjects"]
    extra = {**feed.extra_columns, "Patient Initials": "Q.X.Z."}
    with_initials = dataclasses.replace(
        dialect, feeds={**dialect.feeds, "subjects": dataclasses.replace(feed, extra_columns=extra)}
    )
    rows = read_delivery(valid["SMO-NORDIC"]["subjects"], _nordic_opts(tmp_path)).frame
    assert rows.height > 0
    opts = _nordic_opts(tmp_path)
    # The same records as the valid file, written with the extra column.
    from synthetic.bad_deliveries import _Base

    base = _Base(7)
    _, records = base.rows("SMO-NORDIC", "subjects")
    delivered = write_feed(
        with_initials, "subjects", tmp_path / "in.xlsx", records, title="subjects"
    )
    copy = tmp_path / "out.xlsx"
    assert redact_delivery(delivered, copy, opts, frozenset({"Patient Initials"})) == [
        "Patient Initials"
    ]
    assert read_delivery(copy, opts).frame.equals(rows)
    with zipfile.ZipFile(copy) as book:
        xml = b"".join(book.read(n) for n in book.namelist())
    assert b"Q.X.Z." not in xml and b"Patient Initials" not in xml


def _nordic_opts(tmp_path: Path) -> FileOptions:
    profile = load_profile(write_profile(tmp_path / "p", profile_dict("SMO-NORDIC")))
    return profile.feeds["subjects"].file


def test_xport_redaction_cuts_the_variable_from_every_record(shared_data, tmp_path):
    import pandas as pd

    data = (shared_data / "sdtm" / "cdiscpilot01" / "dm.xpt").read_bytes()
    assert data.count(b"RFSTDTC ") == 1  # the NAMESTR name field: make it BRTHDTC
    delivered = tmp_path / "dm.xpt"
    delivered.write_bytes(data.replace(b"RFSTDTC ", b"BRTHDTC "))
    opts = FileOptions(type="xport", encoding="latin-1")
    copy = tmp_path / "dm_redacted.xpt"
    assert redact_delivery(delivered, copy, opts, frozenset({"BRTHDTC"})) == ["BRTHDTC"]

    before = pd.read_sas(delivered, format="xport", encoding="latin-1")
    after = pd.read_sas(copy, format="xport", encoding="latin-1")
    assert "BRTHDTC" in before.columns and "BRTHDTC" not in after.columns
    pd.testing.assert_frame_equal(after, before.drop(columns="BRTHDTC"))
    assert len(copy.read_bytes()) % 80 == 0 and b"BRTHDTC" not in copy.read_bytes()
    assert read_delivery(copy, opts).frame.width == before.shape[1] - 1
