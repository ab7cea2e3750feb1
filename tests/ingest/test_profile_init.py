"""`smo-oversight profile init`: starter profiles from sample files (SDTM and the four dialects)."""

from __future__ import annotations

import polars as pl
import pytest

from ingest.profile_init import starter_profile
from ingest.profiles import load_profile
from synthetic.dialects import DIALECTS
from tests.ingest.test_cli import cli
from tests.ingest.test_sdtm_delivery import dv_domains, read, write_csv


def test_init_then_dry_run_on_the_pilot_gives_the_counts_of_ds_and_dm(shared_data, tmp_path):
    pilot = shared_data / "sdtm" / "cdiscpilot01"
    files = [str(pilot / f"{d}.xpt") for d in ("dm", "ds", "sv")]
    profile = tmp_path / "pilot.yaml"
    done = cli(
        "profile", "init", "--smo", "SMO-PILOT", "--out", str(profile), *files, env_dir=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "it loads" in done.stdout
    text = profile.read_text()
    assert "# guess" in text and "randomized_date: [randomized_milestone, RFSTDTC]" in text
    out = tmp_path / "rows"
    done = cli("check-delivery", "--smo", "SMO-PILOT", "--profile", str(profile), "--out", str(out),
               *files, env_dir=tmp_path)  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr
    assert "key.unique" in done.stdout  # the pilot's genuine duplicate SV key
    subjects = pl.read_parquet(out / "subjects.parquet")
    dm, ds = read(pilot, "dm"), read(pilot, "ds")
    events = ds[ds.DSCAT == "DISPOSITION EVENT"]
    failed = set(events[events.DSDECOD == "SCREEN FAILURE"].USUBJID)
    completed = set(events[events.DSDECOD == "COMPLETED"].USUBJID)
    ended = set(events.USUBJID) - failed
    assert subjects.height == dm.USUBJID.nunique()
    assert subjects["screen_failed_date"].is_not_null().sum() == len(failed)
    assert subjects["randomized_date"].is_not_null().sum() == len(set(dm.USUBJID) - failed)
    assert subjects["completed_date"].is_not_null().sum() == len(completed)
    assert subjects["discontinued_date"].is_not_null().sum() == len(ended - completed)


def test_init_proposes_stripping_a_birth_date_and_reads_dv_importance(shared_data, tmp_path):
    pilot = shared_data / "sdtm" / "cdiscpilot01"
    dm = read(pilot, "dm")
    dm.insert(5, "BRTHDTC", "1950-01-01")
    files = [write_csv(dm, tmp_path / "dm.csv"), pilot / "ds.xpt", pilot / "sv.xpt",
             *dv_domains(pilot, tmp_path)]  # fmt: skip
    text = starter_profile("SMO-PILOT", files)
    line = next(x for x in text.splitlines() if "strip_identifiers" in x)
    assert '["BRTHDTC"]' in line and "date of birth" in line and "never stored" in line
    assert "importance_from: SUPPDV" in text and 'qnam: "DVIMPFL"' in text
    path = tmp_path / "p.yaml"
    path.write_text(text)
    profile = load_profile(path)
    assert profile.sdtm.importance_map == {"N": "NON_IMPORTANT", "Y": "IMPORTANT"}
    assert profile.sdtm.strip_identifiers == {"BRTHDTC"}


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    from synthetic.bad_deliveries import write_valid_deliveries

    return write_valid_deliveries(tmp_path_factory.mktemp("init"))


@pytest.mark.parametrize("smo_id", ["SMO-IBERIA", "SMO-AMERICAS", "SMO-NORDIC", "SMO-SAKURA"])
def test_init_reads_each_dialects_file_layout(valid, smo_id, tmp_path):
    dialect = DIALECTS[smo_id.removeprefix("SMO-").lower()]
    files = valid[smo_id]
    path = tmp_path / "p.yaml"
    path.write_text(starter_profile(smo_id, list(files.values())))
    profile = load_profile(path)  # a starter profile always loads
    assert set(profile.feeds) == set(files)  # the feed of every file, from its name
    for feed, fp in profile.feeds.items():
        assert fp.file.type == dialect.file_type
        if dialect.file_type == "csv":
            assert (fp.file.encoding, fp.file.delimiter) == (dialect.encoding, dialect.delimiter)
            # a decimal comma is proposed where a column holds such numbers (amounts, FTE)
            assert fp.file.decimal in {".", dialect.decimal}
            if feed == "payments":
                assert fp.file.decimal == dialect.decimal
        else:
            assert (fp.file.sheet, fp.file.header_row) == (
                dialect.feeds[feed].sheet,
                dialect.header_row,
            )
        assert fp.match(files[feed].name) is not None
        if fp.date_formats:
            declared = dialect.feeds[feed].date_formats
            main = {f for c, f in fp.date_formats.items() if c not in declared}
            assert main <= {dialect.date_format}, (feed, fp.date_formats)


def test_init_does_not_overwrite(tmp_path):
    out = tmp_path / "p.yaml"
    out.write_text("mine")
    sample = tmp_path / "subjects_20260101.csv"
    sample.write_text("subject_id,screened_date\nS1,2026-01-01\n")
    done = cli("profile", "init", "--smo", "X", "--out", str(out), str(sample), env_dir=tmp_path)
    assert done.returncode == 2 and out.read_text() == "mine" and "Traceback" not in done.stderr
