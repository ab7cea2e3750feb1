"""Every malformed delivery in the catalogue is refused whole, for the rule it breaks."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ingest.gate import check_delivery
from ingest.profiles import load_profile
from ingest.rejection_report import write_reports
from synthetic.bad_deliveries import CASES

RECEIVED = dt.datetime(2026, 11, 16, 6)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_delivery_is_rejected_for_its_rule(catalogue, case):
    bad = catalogue[case]
    result = check_delivery(
        bad.path, load_profile(bad.profile_path), received_at=RECEIVED, roster=bad.roster
    )
    assert not result.accepted
    assert result.frame is None  # nothing of a rejected file can be loaded
    assert bad.expected_rule in {t.rule for t in result.totals}
    assert all(p.message for p in result.problems)


VALUE_CASES = [
    "duplicate_keys",
    "unknown_code",
    "unmapped_sex_label",
    "bad_date_format",
    "negative_amounts",
    "unknown_site",
]


@pytest.mark.parametrize("case", VALUE_CASES)
def test_report_names_file_row_column_rule_and_value(catalogue, case, tmp_path):
    bad = catalogue[case]
    result = check_delivery(
        bad.path, load_profile(bad.profile_path), received_at=RECEIVED, roster=bad.roster
    )
    json_path, md_path = write_reports(result, tmp_path / bad.path.name)
    report = json.loads(json_path.read_text())
    failure = next(f for f in report["failures"] if f["rule"] == bad.expected_rule)
    assert failure["file"] == bad.path.name
    assert failure["row"] >= 2  # spreadsheet rows: the header is row 1 (or below a title block)
    assert failure["value"]
    assert failure["column"] or "=" in failure["value"]  # a cell, or the row's key columns
    total = next(t for t in report["totals"] if t["rule"] == bad.expected_rule)
    assert total["count"] >= 1
    markdown = md_path.read_text()
    assert bad.expected_rule in markdown and bad.path.name in markdown


def test_bad_date_report_quotes_raw_value_and_declared_format(catalogue):
    bad = catalogue["bad_date_format"]
    result = check_delivery(
        bad.path, load_profile(bad.profile_path), received_at=RECEIVED, roster=bad.roster
    )
    problem = next(p for p in result.problems if p.rule == "value.type")
    assert problem.value == "12/31/2026"
    assert "%d/%m/%Y" in problem.message
    assert "Fecha selección" in problem.message  # the SMO's own column name


def test_examples_are_capped_but_totals_complete(catalogue, tmp_path):
    """A file where every row breaks a rule: the report lists 20 examples, counts them all."""
    from ingest.gate import EXAMPLES_PER_RULE

    bad = catalogue["duplicate_keys"]
    text = bad.path.read_bytes().decode("cp1252")
    header, *rows = text.rstrip("\r\n").split("\r\n")
    doubled = tmp_path / bad.path.name
    doubled.write_bytes(("\r\n".join([header, *rows, *rows]) + "\r\n").encode("cp1252"))
    result = check_delivery(
        doubled, load_profile(bad.profile_path), received_at=RECEIVED, roster=bad.roster
    )
    total = next(t for t in result.totals if t.rule == "key.unique")
    shown = [p for p in result.problems if p.rule == "key.unique"]
    assert total.count == 2 * len(rows) > EXAMPLES_PER_RULE
    assert len(shown) == EXAMPLES_PER_RULE


def test_a_reader_failing_unexpectedly_is_a_rejection_not_a_crash(catalogue, monkeypatch):
    """A file that trips the CSV library in a way nobody foresaw is still reported, not raised."""
    import polars as pl

    def broken(*args, **kwargs):
        raise RuntimeError("internal parser error at byte 17")

    monkeypatch.setattr(pl, "read_csv", broken)
    bad = catalogue["duplicate_keys"]
    result = check_delivery(
        bad.path, load_profile(bad.profile_path), received_at=RECEIVED, roster=bad.roster
    )
    assert [t.rule for t in result.totals] == ["file.unreadable"]
    assert "RuntimeError: internal parser error" in result.problems[0].message
