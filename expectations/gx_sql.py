"""great-expectations suites evaluated as SQL in DuckDB, with GX's own result format.

The publish gate's rules stay a GX suite: each rule is an expectation configuration in GX's JSON
form (`{"type": ..., "kwargs": ...}`, as `ExpectationSuite.to_json_dict()` holds them), and each
result is GX's SUMMARY result (`unexpected_count`, `partial_unexpected_list`, in row order) or its
exception message (a missing column, a type it cannot compare). Only the evaluation is ours:
GX over pandas cost a 3.5 s import plus ~0.12 s per mart whatever its size (6.6 s of the 7.4 s
gate at demo scale, ~21 s at large), and its SQL engine needs a SQLAlchemy dialect for DuckDB
that is not part of GX (duckdb-engine: with GX 1.24 it dropped the schema and read no table).
Here a suite is one query over the relation.

Every expectation type a suite may hold has its SQL form in `SQL_FORMS`; `check_suite` refuses
any other type when the suite is built (definitions load), so no rule passes unevaluated.
NULL is missing, as in GX; NaN is a value here (pandas reads it as missing): the gate's finite
rule reports it. tests/test_gx_sql.py checks on random tables that GX's own pandas evaluation
agrees on success, unexpected counts and examples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: GX's default number of unexpected values kept in a SUMMARY result.
PARTIAL_UNEXPECTED = 20

NUMERIC_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
     "UBIGINT", "FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8", "BOOLEAN"}
)  # fmt: skip
FLOATING_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"})


class NoSqlForm(ValueError):
    """A suite holds an expectation type this module cannot evaluate in SQL."""


def configure(type_: str, **kwargs: Any) -> dict:
    """One expectation configuration, in GX's JSON form."""
    return {"type": type_, "kwargs": kwargs}


def quote(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


@dataclass(frozen=True)
class SqlForm:
    #: The columns an expectation reads (missing ones are GX's "does not exist" error).
    columns: Callable[[dict], list[str]]
    #: SQL true for an unexpected row (may use window functions), given kwargs and column types.
    unexpected: Callable[[dict, dict[str, str]], str]
    #: SQL for the value GX lists for an unexpected row.
    value: Callable[[dict], str]
    #: GX's exception message when the column types do not fit, else None.
    type_error: Callable[[dict, dict[str, str]], str | None] = lambda kwargs, types: None


def _between(kwargs: dict, types: dict[str, str]) -> str:
    column = quote(kwargs["column"])
    bounds = [
        f"{column} < {kwargs['min_value']}" if kwargs.get("min_value") is not None else None,
        f"{column} > {kwargs['max_value']}" if kwargs.get("max_value") is not None else None,
    ]
    outside = " or ".join(b for b in bounds if b) or "false"
    nan = f" and not isnan({column})" if _base(types[kwargs["column"]]) in FLOATING_TYPES else ""
    return f"({column} is not null{nan} and ({outside}))"


def _between_types(kwargs: dict, types: dict[str, str]) -> str | None:
    numeric_bounds = all(
        isinstance(kwargs[b], int | float)
        for b in ("min_value", "max_value")
        if kwargs.get(b) is not None
    )
    if numeric_bounds and _base(types[kwargs["column"]]) not in NUMERIC_TYPES:
        return "Column values, min_value, and max_value must either be None or of the same type."
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is not None and high is not None and low > high:
        return "min_value cannot be greater than max_value"
    return None


def _compound_unique(kwargs: dict, types: dict[str, str]) -> str:
    columns = [quote(c) for c in kwargs["column_list"]]
    any_value = " or ".join(f"{c} is not null" for c in columns)
    return f"(({any_value}) and count(*) over (partition by {', '.join(columns)}) > 1)"


def _base(type_: str) -> str:
    """DECIMAL(18,2) -> DECIMAL counts as numeric; other parameters are cut too."""
    base = type_.split("(")[0].upper()
    return "DOUBLE" if base == "DECIMAL" else base


#: The SQL form of every expectation type the publish gate's suites use.
SQL_FORMS: dict[str, SqlForm] = {
    "expect_column_values_to_not_be_null": SqlForm(
        columns=lambda kw: [kw["column"]],
        unexpected=lambda kw, types: f"({quote(kw['column'])} is null)",
        value=lambda kw: "null",
    ),
    "expect_column_values_to_be_unique": SqlForm(
        columns=lambda kw: [kw["column"]],
        unexpected=lambda kw, types: (
            f"({quote(kw['column'])} is not null and "
            f"count(*) over (partition by {quote(kw['column'])}) > 1)"
        ),
        value=lambda kw: quote(kw["column"]),
    ),
    "expect_compound_columns_to_be_unique": SqlForm(
        columns=lambda kw: list(kw["column_list"]),
        unexpected=_compound_unique,
        value=lambda kw: "{" + ", ".join(f"'{c}': {quote(c)}" for c in kw["column_list"]) + "}",
    ),
    "expect_column_values_to_be_between": SqlForm(
        columns=lambda kw: [kw["column"]],
        unexpected=_between,
        value=lambda kw: quote(kw["column"]),
        type_error=_between_types,
    ),
}


def check_suite(expectations: list[dict]) -> list[dict]:
    """The suite itself, once every expectation has its SQL form; else `NoSqlForm`, loudly."""
    missing = sorted({e["type"] for e in expectations} - set(SQL_FORMS))
    if missing:
        raise NoSqlForm(
            f"no SQL form for {', '.join(missing)}: add it to expectations/gx_sql.py SQL_FORMS "
            "(with a case in tests/test_gx_sql.py) before a suite may use it"
        )
    return expectations


def _result(success: bool, count: int = 0, values: list | None = None, error: str | None = None):
    """One expectation's result in GX's shape (SUMMARY)."""
    return {
        "success": success and error is None,
        "result": {"unexpected_count": count, "partial_unexpected_list": values or []}
        if error is None
        else {},
        "exception_info": {"raised_exception": error is not None, "exception_message": error},
    }


def evaluate(con: Any, relation: str, expectations: list[dict]) -> list[tuple[dict, dict]]:
    """(expectation, GX-shaped result) for each expectation on `relation`, a DuckDB table whose
    `rowid` is the row order: validator errors first, then in suite order. One query for the
    whole suite; if that raises, each expectation alone, so an error stays with its rule."""
    check_suite(expectations)
    types = {r[0]: r[1] for r in con.execute(f"describe {relation}").fetchall()}
    errors, usable = [], []
    for e in expectations:
        form = SQL_FORMS[e["type"]]
        absent = [c for c in form.columns(e["kwargs"]) if c not in types]
        message = (
            f'Error: The column "{absent[0]}" in BatchData does not exist.'
            if absent
            else form.type_error(e["kwargs"], types)
        )
        if message:
            errors.append((e, _result(False, error=message)))
        else:
            usable.append(e)
    try:
        results = _query(con, relation, usable, types)
    except Exception:  # noqa: BLE001 - evaluated one by one below, each error kept with its rule
        results = []
        for e in usable:
            try:
                results += _query(con, relation, [e], types)
            except Exception as exc:  # noqa: BLE001 - GX reports an expectation that raised
                results.append((e, _result(False, error=" ".join(str(exc).split())[:500])))
    return errors + results


def _query(con: Any, relation: str, expectations: list[dict], types: dict[str, str]) -> list:
    if not expectations:
        return []
    flags, aggregates = [], []
    for i, e in enumerate(expectations):
        form = SQL_FORMS[e["type"]]
        flags.append(
            f"{form.unexpected(e['kwargs'], types)} as u{i}, {form.value(e['kwargs'])} as v{i}"
        )
        aggregates.append(
            f"count_if(u{i}), (list(v{i} order by r) filter (where u{i}))[1:{PARTIAL_UNEXPECTED}]"
        )
    row = con.execute(
        f"select {', '.join(aggregates)} from (select rowid as r, {', '.join(flags)} "
        f"from {relation})"
    ).fetchall()[0]
    return [
        (e, _result(not row[i * 2], row[i * 2] or 0, list(row[i * 2 + 1] or [])))
        for i, e in enumerate(expectations)
    ]
