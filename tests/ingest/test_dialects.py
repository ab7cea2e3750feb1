"""Each dialect feature reads back to exactly the canonical values the generator wrote."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from expectations.feeds import FEEDS
from ingest.gate import check_delivery
from ingest.profiles import load_profile
from synthetic.bad_deliveries import END, _Base

RECEIVED = dt.datetime(2026, 11, 16, 6)

# (what the case exercises, SMO, feed, columns whose values prove it)
FEATURES = [
    ("semicolon, cp1252, Spanish headers, day-first dates", "SMO-IBERIA", "subjects", ["screened_date", "randomized_date"]),
    ("decimal commas", "SMO-IBERIA", "payments", ["amount", "holdback_amount"]),
    ("Spanish code list", "SMO-IBERIA", "sites", ["status"]),
    ("UTF-8 BOM, month-first dates, study id from the file name", "SMO-AMERICAS", "subjects", ["study_id", "consent_date", "screened_date"]),
    ("5-Mar-2024 dates", "SMO-AMERICAS", "sites", ["activation_date", "planned_activation_date"]),
    ("English code list", "SMO-AMERICAS", "deviations", ["severity"]),
    ("XLSX with a title block, real date cells", "SMO-NORDIC", "visits", ["actual_date", "planned_date"]),
    ("Excel serial dates", "SMO-NORDIC", "visits", ["crf_entry_date"]),
    ("XLSX numbers", "SMO-NORDIC", "payments", ["amount"]),
    ("UTF-16, tab-separated, Japanese headers, yyyy/mm/dd", "SMO-SAKURA", "subjects", ["subject_id", "screened_date"]),
    ("Japanese code lists", "SMO-SAKURA", "visits", ["status"]),
    ("Japanese staffing roles", "SMO-SAKURA", "staffing", ["role", "fte"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from synthetic.bad_deliveries import write_catalogue, write_valid_deliveries

    out = tmp_path_factory.mktemp("dialects")
    cases = write_catalogue(out, cases=["unknown_site"])  # writes the profiles
    return out, write_valid_deliveries(out / "valid"), _Base(7), next(iter(cases.values()))


@pytest.mark.parametrize(
    ("feature", "smo_id", "feed", "columns"), FEATURES, ids=[f[0] for f in FEATURES]
)
def test_dialect_feature_reads_back_exactly(written, feature, smo_id, feed, columns):
    out, valid, base, _ = written
    profile = load_profile(out / "profiles" / f"{smo_id}.yaml")
    roster = base.roster(smo_id)
    result = check_delivery(valid[smo_id][feed], profile, received_at=RECEIVED, roster=roster)
    assert result.accepted, result.problems[:3]
    study_id, rows = base.rows(smo_id, feed)
    expected = pl.DataFrame(rows).select(
        FEEDS[feed].key + tuple(c for c in columns if c not in FEEDS[feed].key)
    )
    key = list(FEEDS[feed].key)
    got = result.frame.select(expected.columns).sort(key)
    want = expected.cast(got.schema).sort(key)
    assert got.equals(want), f"{feature}: values differ"
    assert got.height == len(rows) > 0
    assert result.delivery_date == END


def test_every_generated_feed_is_accepted(written):
    out, valid, base, _ = written
    for smo_id, feeds in valid.items():
        profile = load_profile(out / "profiles" / f"{smo_id}.yaml")
        for feed, path in feeds.items():
            result = check_delivery(path, profile, received_at=RECEIVED, roster=base.roster(smo_id))
            assert result.accepted, (smo_id, feed, result.problems[:2])
