"""Issue 18: NaN and infinity never enter through a delivery. A CSV amount spelled `Infinity`
or `NaN` is not a number in the declared format (`value.type`); digits too many for a double
parse to infinity and are refused as `value.finite`, with file, row, column and value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from ingest.gate import check_delivery
from ingest.profiles import load_profile

RECEIVED = dt.datetime(2026, 6, 1)
HEADER = "smo_id,study_id,payment_line_id,site_id,item_type,amount,currency,holdback_amount"
HUGE = "9" * 400  # parses to inf as a double


def check(tmp_path: Path, *rows: str):
    profile = tmp_path / "smo.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "smo_id": "SMO-T",
                "profile_version": 1,
                "date_format": "%Y-%m-%d",
                "feeds": {
                    "payments": {
                        "file_pattern": "payments_{delivery_date:%Y%m%d}.csv",
                        "scope": "all_studies",
                    }
                },
            }
        )
    )
    path = tmp_path / "payments_20260601.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return check_delivery(path, load_profile(profile), received_at=RECEIVED, roster=None)


def test_a_finite_file_is_accepted(tmp_path):
    assert check(tmp_path, "SMO-T,S1,L1,X1,VISIT,100.5,EUR,10").accepted


def test_infinity_and_nan_spelled_out_are_refused_as_cells(tmp_path):
    result = check(
        tmp_path,
        "SMO-T,S1,L1,X1,VISIT,Infinity,EUR,10",
        "SMO-T,S1,L2,X1,VISIT,100,EUR,NaN",
        "SMO-T,S1,L3,X1,VISIT,-inf,EUR,",
    )
    assert not result.accepted
    found = {(p.rule, p.column, p.row, p.value) for p in result.problems}
    assert ("value.type", "amount", 2, "Infinity") in found
    assert ("value.type", "holdback_amount", 3, "NaN") in found
    assert ("value.type", "amount", 4, "-inf") in found
    assert result.frame is None or result.frame.height == 0


def test_a_number_too_long_for_a_double_is_refused_as_not_finite(tmp_path):
    result = check(tmp_path, "SMO-T,S1,L1,X1,VISIT,100,EUR,0", f"SMO-T,S1,L2,X1,VISIT,{HUGE},EUR,0")
    assert not result.accepted
    assert [(t.rule, t.column, t.count) for t in result.totals] == [("value.finite", "amount", 1)]
    (problem,) = result.problems
    assert (problem.rule, problem.column, problem.row) == ("value.finite", "amount", 3)
    assert problem.value is not None
