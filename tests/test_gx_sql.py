"""The publish gate's suites run as SQL (expectations/gx_sql.py): every expectation type the
suites use has a SQL form that agrees with great-expectations' own pandas evaluation (the
engine the gate used before), and a type without one fails loudly."""

from __future__ import annotations

import json
import os

import duckdb
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from expectations.gx_sql import SQL_FORMS, NoSqlForm, check_suite, configure, evaluate
from expectations.publish_gate import mart_rules, suite
from orchestration.lib.dbt import dbt_project


@pytest.fixture(scope="module")
def suites() -> dict[str, list[dict]]:
    manifest = json.loads(dbt_project.manifest_path.read_text())
    return {mart: suite(rules) for mart, rules in mart_rules(manifest).items()}


@pytest.fixture(scope="module")
def gx():
    """great-expectations itself (the oracle): an ephemeral context and a pandas batch maker."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batches = context.data_sources.add_pandas("oracle").add_dataframe_asset("table")
    return gx, batches.add_batch_definition_whole_dataframe("whole")


def test_every_suite_is_a_great_expectations_suite_with_sql_forms(suites, gx):
    module, _ = gx
    used = {e["type"] for expectations in suites.values() for e in expectations}
    assert used == set(SQL_FORMS)  # a form no suite uses would be untested code
    for mart, expectations in suites.items():
        # GX validates every configuration (type and kwargs) when it builds the suite
        loaded = module.ExpectationSuite(name=f"publish_{mart}", expectations=expectations)
        assert len(loaded.expectations) == len(expectations)


def test_an_expectation_without_a_sql_form_fails_loudly():
    regex = configure("expect_column_values_to_match_regex", column="site_id", regex="^A")
    with pytest.raises(NoSqlForm, match="expect_column_values_to_match_regex"):
        check_suite([configure("expect_column_values_to_not_be_null", column="a"), regex])
    with duckdb.connect() as con, pytest.raises(NoSqlForm):
        con.execute("create table t as select 'A1' as site_id")
        evaluate(con, "t", [regex])


def test_a_missing_column_and_an_uncomparable_type_are_gx_errors_of_that_rule_only():
    with duckdb.connect() as con:
        con.execute("create table t as select 'a' as word, 1 as n")
        results = evaluate(
            con,
            "t",
            [
                configure("expect_column_values_to_not_be_null", column="n"),
                configure("expect_column_values_to_be_between", column="nope", min_value=0),
                configure("expect_column_values_to_be_between", column="word", min_value=0),
            ],
        )
    messages = [
        (e["kwargs"]["column"], r["exception_info"]["exception_message"]) for e, r in results
    ]
    assert messages == [
        ("nope", 'Error: The column "nope" in BatchData does not exist.'),
        (
            "word",
            "Column values, min_value, and max_value must either be None or of the same type.",
        ),
        ("n", None),
    ]
    assert [r["success"] for _, r in results] == [False, False, True]


VALUES = {
    "n": st.one_of(st.none(), st.integers(-2, 4)),
    "x": st.one_of(st.none(), st.sampled_from([-1.5, 0.0, 0.5, 1.0, 3.25, float("inf")])),
    "k": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
    "k2": st.one_of(st.none(), st.sampled_from(["p", "q"])),
}
BOUND = st.one_of(st.none(), st.integers(-1, 3))


# GX takes ~0.1 s per validation: a bounded run, and no shrinking (the failing table is printed)
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.generate])
@given(
    rows=st.lists(st.fixed_dictionaries(VALUES), max_size=12),
    bounds=st.lists(
        st.tuples(BOUND, BOUND).filter(lambda b: b != (None, None)), min_size=2, max_size=2
    ),
)
def test_sql_and_great_expectations_agree_on_random_tables(gx, rows, bounds):
    """Success, unexpected count and the listed unexpected values (in row order) agree for
    every expectation type, NULLs included. The table reaches GX as the gate gave it: read
    from DuckDB into pandas (NaN is not generated: pandas reads it as missing, the gate's finite
    rule reports it)."""
    module, batches = gx
    (n_low, n_high), (x_low, x_high) = bounds
    expectations = [
        configure("expect_column_values_to_not_be_null", column="n"),
        configure("expect_column_values_to_not_be_null", column="k"),
        configure("expect_column_values_to_be_unique", column="k"),
        configure("expect_column_values_to_be_unique", column="n"),
        configure("expect_compound_columns_to_be_unique", column_list=["k", "k2"]),
        configure("expect_compound_columns_to_be_unique", column_list=["k", "n"]),
        configure(
            "expect_column_values_to_be_between", column="n", min_value=n_low, max_value=n_high
        ),
        configure(
            "expect_column_values_to_be_between", column="x", min_value=x_low, max_value=x_high
        ),
    ]
    with duckdb.connect() as con:
        con.execute("create table t (n integer, x double, k varchar, k2 varchar)")
        if rows:
            con.executemany(
                "insert into t values (?, ?, ?, ?)",
                [(r["n"], r["x"], r["k"], r["k2"]) for r in rows],
            )
        sql = {_key(e["type"], e["kwargs"]): r for e, r in evaluate(con, "t", expectations)}
        frame = con.execute("select * from t").df()
    validation = batches.get_batch(batch_parameters={"dataframe": frame}).validate(
        module.ExpectationSuite(name="oracle", expectations=expectations),
        result_format={"result_format": "SUMMARY"},
    )
    assert len(validation.results) == len(expectations) == len(sql)
    for result in validation.results:
        config = result.expectation_config
        mine = sql[_key(config.type, config.kwargs)]
        where = f"{config.type} {config.kwargs} on {rows}"
        assert not result.exception_info.get("raised_exception"), where
        assert mine["success"] == result.success, where
        assert mine["result"].get("unexpected_count") == result.result.get("unexpected_count"), (
            where
        )
        theirs = result.result.get("partial_unexpected_list") or []
        if config.type == "expect_compound_columns_to_be_unique":
            theirs = [{k: _plain(v) for k, v in d.items()} for d in theirs]
        assert mine["result"].get("partial_unexpected_list", []) == [_plain(v) for v in theirs], (
            where
        )


def _key(type_: str, kwargs: dict) -> tuple:
    return type_, kwargs.get("column"), tuple(kwargs.get("column_list") or ())


def _plain(value):
    """pandas' missing values and numpy scalars as Python values."""
    if value is None or str(value) == "<NA>" or (isinstance(value, float) and value != value):
        return None
    return value.item() if hasattr(value, "item") else value
