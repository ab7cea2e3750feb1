"""`strip_identifiers`: a profile may strip identifier columns explicitly; they never reach a
table, and what is kept is a redacted copy (CSV, XLSX, XPORT) whose record names the original's
SHA-256. The original bytes are stored nowhere."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import duckdb
import pytest
import yaml

from ingest.inbox import process_inbox
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


# -- end to end -------------------------------------------------------------------------------


@pytest.fixture
def strip_env(tmp_path, valid):
    profiles = tmp_path / "profiles"
    write_profile(profiles, profile_dict("SMO-IBERIA", subjects={"strip_identifiers": [DOB]}))
    inbox = tmp_path / "inbox" / "SMO-IBERIA"
    inbox.mkdir(parents=True)
    shutil.copy2(valid["SMO-IBERIA"]["sites"], inbox)
    opts = load_profile(profiles / "SMO-IBERIA.yaml").feeds["subjects"].file
    original = valid["SMO-IBERIA"]["subjects"]
    delivered = with_column(original, tmp_path / original.name, opts=opts, at=3, header=DOB,
                            values=BIRTH_DATES)  # fmt: skip
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield {"tmp": tmp_path, "inbox": inbox, "profiles": profiles, "con": con, "opts": opts,
           "original": original, "delivered": delivered}  # fmt: skip
    con.close()


def run(env):
    t = env["tmp"]
    return process_inbox(env["con"], inbox=t / "inbox", archive=t / "archive",
                         quarantine=t / "quarantine", profiles_dir=env["profiles"])  # fmt: skip


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.suffix in (".csv", "")]


def test_stripped_column_never_reaches_a_table_and_the_archive_is_redacted(strip_env):
    env, con = strip_env, strip_env["con"]
    delivered = env["delivered"]
    shutil.copy2(delivered, env["inbox"])
    delivered_sha = sha256(delivered)

    summary = run(env)

    statuses = {o.feed: o.status for o in summary.outcomes}
    assert statuses == {"sites": "ACCEPTED", "subjects": "ACCEPTED"}
    subjects = next(o for o in summary.outcomes if o.feed == "subjects")
    columns = [c for (c,) in con.execute(
        "select column_name from information_schema.columns where table_name = 'subjects'"
    ).fetchall()]  # fmt: skip
    assert not any("nacimiento" in c or "birth" in c for c in columns)
    text = con.execute("select string_agg(s::varchar, '|') from raw.subjects s").fetchone()[0]
    assert not any(v in text for v in BIRTH_DATES)
    assert con.execute("select count(*) from raw.subjects").fetchone()[0] == subjects.rows > 0

    archived = subjects.stored_path
    assert archived.read_bytes() == env["original"].read_bytes()  # the export without the column
    assert not any(v.encode() in archived.read_bytes() for v in BIRTH_DATES)
    sidecar = json.loads(Path(f"{archived}.redaction.json").read_text())
    assert sidecar["original_sha256"] == delivered_sha
    assert sidecar["columns_removed"] == [DOB]
    assert sidecar["stored_sha256"] == sha256(archived)
    ledger_sha = con.execute(
        "select sha256 from ops.deliveries where delivery_id = ?", [subjects.delivery_id]
    ).fetchone()[0]
    assert ledger_sha == delivered_sha  # the ledger keeps the delivered file's hash
    [(details,)] = con.execute(
        "select details from ops.gate_results where check_name = 'identifiers.stripped' "
        "and delivery_id = ? and success",
        [subjects.delivery_id],
    ).fetchall()
    assert json.loads(details)["original_sha256"] == delivered_sha

    # The same file again is a duplicate (by the original's hash), and is kept redacted too.
    shutil.copy2(delivered, env["inbox"])
    [again] = run(env).outcomes
    assert again.status == "DUPLICATE" and again.stored_path.read_bytes() == archived.read_bytes()
    # The original bytes are stored nowhere.
    kept = stored_files(env["tmp"] / "archive") + stored_files(env["tmp"] / "quarantine")
    assert kept and all(sha256(p) != delivered_sha for p in kept)
    assert list(env["inbox"].iterdir()) == []


def test_a_rejected_file_is_quarantined_redacted(strip_env):
    env = strip_env
    rows = env["delivered"].read_bytes().decode("cp1252").split("\r\n")
    fields = rows[1].split(";")
    fields[4] = "31/31/2026"  # an impossible screening date: value.type
    rows[1] = ";".join(fields)
    bad = env["inbox"] / env["delivered"].name
    bad.write_bytes("\r\n".join(rows).encode("cp1252"))
    delivered_sha = sha256(bad)

    summary = run(env)

    rejected = next(o for o in summary.outcomes if o.feed == "subjects")
    assert rejected.status == "REJECTED"
    report = json.loads(Path(f"{rejected.stored_path}.report.json").read_text())
    assert report["sha256"] == delivered_sha
    assert report["redaction"]["original_sha256"] == delivered_sha
    assert report["redaction"]["columns_removed"] == [DOB]
    assert "value.type" in {t["rule"] for t in report["totals"]}
    stored = rejected.stored_path.read_bytes()
    assert DOB.encode("cp1252") not in stored and not any(v.encode() in stored for v in BIRTH_DATES)
    assert sha256(rejected.stored_path) != delivered_sha


def test_an_unreadable_file_of_a_stripping_feed_is_not_kept(strip_env):
    """The gate cannot read it, so the identifier columns cannot be ruled out: no bytes kept."""
    env = strip_env
    bad = env["inbox"] / env["delivered"].name
    bad.write_bytes(env["delivered"].read_bytes().replace(b";", b","))  # wrong delimiter

    summary = run(env)

    rejected = next(o for o in summary.outcomes if o.feed == "subjects")
    assert rejected.status == "REJECTED" and rejected.stored_path is None
    report = json.loads(Path(f"{rejected.report_path}".replace(".md", ".json")).read_text())
    assert report["totals"][0]["rule"] == "file.delimiter"
    assert "not kept" in report["not_kept"]
    assert not bad.exists()
    assert stored_files(env["tmp"] / "quarantine") == []
    stored_path = (
        env["con"]
        .execute(
            "select stored_path from ops.deliveries where delivery_id = ?", [rejected.delivery_id]
        )
        .fetchone()[0]
    )
    assert stored_path is None
