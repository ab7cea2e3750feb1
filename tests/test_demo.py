"""`make demo` speaks to a person: a short message naming what failed, never a traceback."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from orchestration import demo

pytestmark = pytest.mark.integration


def test_a_failed_refresh_names_the_blocking_checks_and_exits_non_zero(refreshed_env: Path, capsys):
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb")) as con:
        # A change behind the pipeline's back: the blocking contract check of current rows fails.
        con.execute(
            "update raw.subjects set screened_date = null where subject_id in "
            "(select subject_id from raw.subjects limit 1)"
        )
    code = demo.main()
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 1
    assert "FAILED" in text
    assert "blocking check contract on raw/subjects" in text
    assert "The last good publish stays in place" in text
    assert "Traceback" not in text
    assert len(text.splitlines()) < 40, text


def test_an_unexpected_error_is_one_sentence(project_env: Path, monkeypatch, capsys):
    def broken():
        raise RuntimeError("the code location could not be loaded\nwith a long story")

    monkeypatch.setattr(demo, "refresh_job", broken)
    (project_env / "data" / "profiles").mkdir(parents=True)  # no demo data generation
    code = demo.main()
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().startswith("make demo failed:")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
