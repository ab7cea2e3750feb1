"""`smo-oversight check-delivery --out` and SDTM deliveries, through the real console script."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import polars as pl
import pytest

from core.settings import PROJECT_ROOT
from tests.ingest.test_cli import cli

EXAMPLE = PROJECT_ROOT / "docs" / "examples" / "cdiscpilot01.yaml"


def test_the_pilot_dry_run_writes_the_rows_it_would_load(shared_data, tmp_path):
    pilot = shared_data / "sdtm" / "cdiscpilot01"
    out = tmp_path / "out"
    done = cli("check-delivery", "--smo", "SMO-PILOT", "--profile", str(EXAMPLE), "--out", str(out),
               *(str(pilot / f"{d}.xpt") for d in ("dm", "ds", "sv")), env_dir=tmp_path)  # fmt: skip
    assert "Traceback" not in done.stdout + done.stderr
    # The example identifies a visit by VISITNUM and SVSTDTC (the pilot repeats VISITNUM 9.2).
    assert done.returncode == 0, done.stdout
    assert "not written" not in done.stdout
    subjects = pl.read_parquet(out / "subjects.parquet")
    dm = pd.read_sas(pilot / "dm.xpt", format="xport", encoding="latin-1")
    assert subjects.height == len(dm)
    assert subjects.schema["randomized_date"] == pl.Date and subjects.schema["age"] == pl.Int64
    assert subjects["randomized_date"].is_not_null().sum() == (dm.RFSTDTC != "").sum()
    sites = pl.read_parquet(out / "sites.parquet")
    assert sorted(sites["site_id"]) == sorted(dm.SITEID.unique())
    sv = pd.read_sas(pilot / "sv.xpt", format="xport", encoding="latin-1")
    assert pl.read_parquet(out / "visits.parquet").height == len(sv)


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    from synthetic.bad_deliveries import write_catalogue, write_valid_deliveries

    out = tmp_path_factory.mktemp("cli_out")
    write_catalogue(out, cases=["wrong_delimiter"])
    return out, write_valid_deliveries(out / "valid")


def test_out_writes_typed_rows_for_every_dialect_feed(valid, tmp_path):
    out, files = valid
    paths = [str(files["SMO-IBERIA"][f]) for f in ("subjects", "sites")]
    target = tmp_path / "rows"
    done = cli("check-delivery", "--smo", "SMO-IBERIA", "--profile", str(out / "profiles/SMO-IBERIA.yaml"),
               "--out", str(target), *paths, env_dir=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    subjects = pl.read_parquet(target / "subjects.parquet")
    assert subjects.schema["screened_date"] == pl.Date
    assert subjects["screened_date"].min() > dt.date(2000, 1, 1)
    assert "wrote" in done.stdout and "raw.subjects" in done.stdout
    assert (target / "sites.parquet").exists()


def test_out_that_cannot_be_written_is_a_clear_error(valid, tmp_path):
    out, files = valid
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = cli("check-delivery", "--smo", "SMO-IBERIA", "--profile", str(out / "profiles/SMO-IBERIA.yaml"),
               "--out", str(blocker / "sub"), str(files["SMO-IBERIA"]["sites"]), env_dir=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "error:" in done.stderr
