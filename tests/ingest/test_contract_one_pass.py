"""`holds` (every rule of a contract in one polars pass) agrees with pandera on any frame.

The delivery gate accepts a file on `holds` alone, so a frame it passes that pandera would fail
is a bad delivery let in. Frames are valid ones (tests/ingest/test_contracts.py) with cells
overwritten by hypothesis (nulls, NaN, infinities, unknown codes, dates far out, rows
repeated), under schemas with and without a delivery date, roster and plausibility.
"""

from __future__ import annotations

import datetime as dt
import math

import pandera.polars as pa
import polars as pl
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from expectations.contracts import (
    ActionTargets,
    Plausibility,
    feed_schema,
    holds,
    pandera_failures,
    roster_keys,
    validate,
)
from expectations.feeds import FEEDS
from tests.ingest.test_contracts import DELIVERY, frame

D = dt.date
TEXT = ["", "X1", "X9", "S1", "S2", "P1", "SMO-A", "bogus", "ES", "Spain", "EUR", "USD", "EURO",
        "18-64", "65-18", "COMPLETED", "DONE", "SITE_FLAG", "OPEN", "enrollment_rate"]  # fmt: skip
FLOATS = [math.nan, math.inf, -math.inf, -1.0, 0.0, 0.5, 1.0, 1.6, 100.0]
PLAUSIBILITY = Plausibility(
    study_starts={"S1": D(2025, 1, 1)},
    fx_first_rate={"EUR": D(2000, 1, 1), "USD": D(2026, 1, 1)},
    targets=ActionTargets(
        studies=frozenset({"S1"}),
        sites=roster_keys(["S1"], ["X1"]),
        kris=frozenset({"enrollment_rate"}),
        smos=frozenset({"SMO-A"}),
        deliveries=frozenset({1}),
    ),
)


def _values(dtype: pl.DataType, enum: tuple[str, ...] | None) -> st.SearchStrategy:
    if dtype == pl.Utf8:
        values = st.sampled_from([*TEXT, *(enum or ())])
    elif dtype == pl.Date:
        values = st.dates(D(1990, 1, 1), D(2045, 12, 31))
    elif dtype == pl.Int64:
        values = st.integers(-3, 20)
    elif dtype == pl.Float64:
        values = st.sampled_from(FLOATS)
    else:
        values = st.booleans()
    return st.none() | values


@st.composite
def cases(draw) -> tuple[pl.DataFrame, pa.DataFrameSchema]:
    feed = FEEDS[draw(st.sampled_from(sorted(FEEDS)))]
    df = frame(feed.name)
    repeats = draw(st.lists(st.integers(0, 1), max_size=2))
    if repeats:
        df = pl.concat([df, *(df[i] for i in repeats)])
    rows = df.to_dicts()
    for _ in range(draw(st.integers(0, 4))):
        column = draw(st.sampled_from(feed.columns))
        row = draw(st.integers(0, len(rows) - 1))
        rows[row][column.name] = draw(_values(df.schema[column.name], column.enum))
    df = pl.DataFrame(rows, schema=df.schema)
    with_context = draw(st.booleans())
    by_smo = "smo_id" in df.columns and "smo_id" not in feed.key
    schema = feed_schema(
        feed,
        delivery_date=DELIVERY if with_context else None,
        roster=roster_keys(["S1"], ["X1"]) if with_context else None,
        plausibility=PLAUSIBILITY if draw(st.booleans()) else None,
        # as the warehouse re-check widens a key by smo_id (orchestration/defs/smo_deliveries.py)
        unique_within=("smo_id",) if draw(st.booleans()) and by_smo else (),
    )
    return df, schema


@given(cases())
def test_one_pass_verdict_is_panderas(case):
    df, schema = case
    verdict = holds(df, schema)
    assert verdict is not None, "every contract the gate builds is evaluated in one pass"
    event(f"holds: {verdict}")  # both verdicts are drawn (--hypothesis-show-statistics)
    failures = pandera_failures(df, schema)
    assert verdict == failures.is_empty(), failures.to_dicts()
    assert validate(df, schema).is_empty() == verdict


@pytest.mark.parametrize("feed", sorted(FEEDS))
def test_a_valid_frame_holds_and_a_broken_one_does_not(feed):
    schema = feed_schema(feed, delivery_date=DELIVERY, roster=roster_keys(["S1"], ["X1"]))
    df = frame(feed)
    assert holds(df, schema) is True
    key = FEEDS[feed].key
    assert holds(pl.concat([df, df.head(1)]), schema) is False, f"{key} repeated"


def test_what_it_cannot_evaluate_is_left_to_pandera():
    schema = feed_schema("visits", delivery_date=DELIVERY)
    wrong_type = frame("visits").with_columns(pl.col("actual_date").cast(pl.Utf8))
    assert holds(wrong_type, schema) is None
    assert "value.type" in set(validate(wrong_type, schema).get_column("rule"))

    foreign = schema.add_columns({"visit_name": pa.Column(pl.Utf8, pa.Check.str_length(1, 3))})
    assert holds(frame("visits"), foreign) is None
    assert not validate(frame("visits"), foreign).is_empty()  # "Baseline" is too long
