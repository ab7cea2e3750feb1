"""The publish gate: great-expectations suites on the marts before BI tools may see them.

Rules come from the dbt project, so they are declared once, next to each column's formula:
- keys: the mart's `unique` / `unique_combination_of_columns` tests -> unique (key columns
  may be null where a roll-up level has no value, e.g. site_id on a study row);
- not null: columns with a `not_null` constraint;
- ranges: column `meta: {min: .., max: ..}` in models/marts/<domain>/_<domain>__models.yml
  (shares 0-1, days and counts >= 0, ...); numeric columns without a possible range say so with
  `meta: {unbounded: why}`;
- nothing silently disappears: every entity (the key without as_of_date) of the previous publish
  must still be there, unless the mart's meta says `publish_entities_may_disappear`;
- finite: no NaN or +/-infinity in any floating-point column of any mart, in any week (spec 3.1).
  One rule for every mart, run in SQL (`non_finite_sql`) because pandas reads NULL as NaN too.
- only what BI users may see: columns declared `meta: {publish: false}` (server paths, detail for
  data engineers) are left out of the publish and not validated; no published column is a
  free-text subject column (expectations/feeds.py) or holds an absolute path; a column declared
  `meta: {free_text_field: <column>}` (retroactive_changes' old/new values) is null wherever that
  column names a free-text field, and one declared `meta: {quotes_cells: true}`
  (delivery_log.rejection_reasons) quotes no free-text cell.
- small cells (privacy): a column declared `meta: {small_cell_min: 5}` (a demographic cell)
  holds NULL, 0 or at least 5 in every row, and a column declared `meta: {suppressed_by: c}`
  is NULL wherever the boolean column c is true (the suppressed cell and its share, gap and
  z-score). Run in SQL over every week (`check_small_cells`), like the finite rule: every
  published week is readable.
Freshness: each SMO's latest delivery is at most `max_days` older than the as-of date.

Keys, not-null and ranges are each mart's GX suite (`suite`), evaluated as SQL in DuckDB on the
mart's latest as-of week with GX's result format (`expectations.gx_sql`: the same verdicts at a
fraction of the cost, and no GX or pandas import on the way). A result whose expectation raised
(a missing column, a type GX cannot compare), or a check whose evaluation raised outside the
suite (`validator_broke`: e.g. an unreadable mart), is a *validator error*, reported apart from
data failures: both block the publish, but they call for different people.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb

from expectations.feeds import FREE_TEXT_COLUMNS
from expectations.gx_sql import check_suite, configure, evaluate, quote

GATE = "publish"
EXAMPLES = 5


@dataclass(frozen=True)
class MartRules:
    mart: str
    keys: tuple[str, ...]
    not_null: tuple[str, ...]
    ranges: dict[str, tuple[float | None, float | None]]
    entity: tuple[str, ...]  # empty: entities may disappear
    #: Columns kept in the warehouse only (`meta: {publish: false}`).
    withheld: tuple[str, ...] = ()
    #: Column -> the column naming the field whose value it holds (`meta: {free_text_field: ..}`).
    free_text_fields: dict[str, str] = field(default_factory=dict)
    #: Columns quoting cells as 'column (..., first at row r: value)' (`meta: {quotes_cells: true}`).
    quotes_cells: tuple[str, ...] = ()
    #: Demographic cell columns -> the smallest count that may be published (`small_cell_min`).
    small_cells: dict[str, int] = field(default_factory=dict)
    #: Column -> the boolean column that, when true, says it must be NULL (`suppressed_by`).
    suppressed_by: dict[str, str] = field(default_factory=dict)

    def published_source(self, relation: str) -> str:
        """What the publish copies from the warehouse relation: every column but the withheld."""
        if not self.withheld:
            return relation
        columns = ", ".join(f'"{c}"' for c in self.withheld)
        return f"(select * exclude ({columns}) from {relation})"


@dataclass
class Finding:
    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    examples: list = field(default_factory=list)
    error: str | None = None  # set when the validator itself failed

    def describe(self) -> str:
        where = f" on {self.column}" if self.column else ""
        if self.error:
            return f"{self.expectation}{where}: validator error: {self.error}"
        detail = f"{self.unexpected_count} unexpected" if self.unexpected_count else ""
        if self.observed is not None:
            detail = f"observed {self.observed}" + (f", {detail}" if detail else "")
        if self.examples:
            detail += f"; e.g. {self.examples}"
        return f"{self.expectation}{where}: {detail}".rstrip(": ")


@dataclass
class Outcome:
    target: str
    rows: int
    findings: list[Finding]

    @property
    def success(self) -> bool:
        return all(f.success for f in self.findings)

    @property
    def validator_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.error]

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if not f.success and not f.error]

    def summary(self) -> str:
        if self.success:
            return f"{self.target}: all {len(self.findings)} expectations met on {self.rows} rows"
        parts = []
        if self.validator_errors:
            parts.append(
                f"the validator broke on {len(self.validator_errors)} expectation(s): "
                + "; ".join(f.describe() for f in self.validator_errors)
            )
        if self.failures:
            parts.append(
                f"the data failed {len(self.failures)} expectation(s): "
                + "; ".join(f.describe() for f in self.failures)
            )
        return f"{self.target}: " + " | ".join(parts)

    def gate_rows(self, run_id: str | None) -> list[dict]:
        return [
            {
                "run_id": run_id,
                "gate": GATE,
                "target": self.target,
                "check_name": f.expectation + (f"({f.column})" if f.column else ""),
                "success": f.success,
                "observed_value": f.observed if f.observed is not None else f.unexpected_count,
                "details": {
                    "column": f.column,
                    "examples": f.examples,
                    "validator_error": f.error,
                    "rows": self.rows,
                },
            }
            for f in self.findings
        ]


def mart_rules(manifest: dict, schema: str = "marts") -> dict[str, MartRules]:
    """The publish rules of every mart, read from the dbt manifest."""
    models = {
        node["unique_id"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == schema
    }
    keys: dict[str, list[str]] = {uid: [] for uid in models}
    not_null: dict[str, set[str]] = {uid: set() for uid in models}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or node.get("attached_node") not in models:
            continue
        meta = node.get("test_metadata") or {}
        kwargs = meta.get("kwargs") or {}
        uid = node["attached_node"]
        if meta.get("name") == "unique_combination_of_columns":
            keys[uid] = list(kwargs.get("columns") or [])
        elif meta.get("name") == "unique" and not keys[uid]:
            keys[uid] = [kwargs["column_name"]]
        elif meta.get("name") == "not_null":
            not_null[uid].add(kwargs["column_name"])
    rules = {}
    for uid, node in models.items():
        columns = node.get("columns", {})
        for name, column in columns.items():
            if any(c.get("type") == "not_null" for c in column.get("constraints", [])):
                not_null[uid].add(name)
        ranges = {
            name: (column["meta"].get("min"), column["meta"].get("max"))
            for name, column in columns.items()
            if "min" in column.get("meta", {}) or "max" in column.get("meta", {})
        }
        entity = tuple(k for k in keys[uid] if k != "as_of_date")
        if node.get("meta", {}).get("publish_entities_may_disappear"):
            entity = ()
        meta = {name: column.get("meta", {}) for name, column in columns.items()}
        rules[node["name"]] = MartRules(
            mart=node["name"],
            keys=tuple(keys[uid]),
            not_null=tuple(sorted(not_null[uid])),
            ranges=ranges,
            entity=entity,
            withheld=tuple(sorted(n for n, m in meta.items() if m.get("publish") is False)),
            free_text_fields={
                n: m["free_text_field"] for n, m in sorted(meta.items()) if "free_text_field" in m
            },
            quotes_cells=tuple(sorted(n for n, m in meta.items() if m.get("quotes_cells"))),
            small_cells={
                n: int(m["small_cell_min"])
                for n, m in sorted(meta.items())
                if "small_cell_min" in m
            },
            suppressed_by={
                n: m["suppressed_by"] for n, m in sorted(meta.items()) if "suppressed_by" in m
            },
        )
    return rules


#: The finding that says whether anything published before has disappeared.
ENTITIES_PRESENT = "expect_previously_published_entities_present"

#: The finding that says no number is NaN or infinite (spec 3.1: never published).
FINITE = "expect_column_values_to_be_finite"

#: DuckDB types that can hold NaN and infinity (integers and decimals cannot).
FLOATING_TYPES = frozenset({"FLOAT", "DOUBLE", "REAL", "FLOAT4", "FLOAT8"})


def floating_columns(described: list[tuple]) -> list[str]:
    """The NaN-capable columns of a relation, from its `describe` rows (name, type, ...)."""
    return [row[0] for row in described if str(row[1]).upper() in FLOATING_TYPES]


def non_finite_sql(
    relation: str, columns: list[str], key: tuple[str, ...], carry: tuple[str, ...] = ()
) -> str | None:
    """One row per (row, column) holding NaN or +/-infinity: the `carry` expressions, then column,
    value and the row's key as text (`as_of_date=2026-11-16, site_id=X1`). One scan for all
    columns; None when the relation has no floating-point column."""
    if not columns:
        return None
    cases = ", ".join(
        f"case when not isfinite(\"{c}\") then {{'column': '{c}', 'value': \"{c}\"::varchar}} end"
        for c in columns
    )
    named = ", ".join(f"'{k}=' || coalesce(\"{k}\"::varchar, 'null')" for k in key)
    key_text = f"concat_ws(', ', {named})" if key else "null::varchar"
    carried = "".join(f"{c}, " for c in carry)
    return f"""
        select {carried}v.column as column_name, v.value, row_key from (
            select {carried}{key_text} as row_key,
                   unnest(list_filter([{cases}], lambda x: x is not null)) as v
            from {relation}
        ) order by all
    """


def check_finite(con: Any, relation: str, key: tuple[str, ...]) -> list[Finding]:
    """The finite rule on every row of `relation`, on a DuckDB connection."""
    columns = floating_columns(
        [(r[0], r[1]) for r in con.execute(f"describe {relation}").fetchall()]
    )
    sql = non_finite_sql(relation, columns, key)
    return finite_findings(con.execute(sql).fetchall() if sql else [], columns)


def finite_findings(rows: list[tuple[str, str, str]], columns: list[str]) -> list[Finding]:
    """Findings of the finite rule from `non_finite_sql` rows (column, value, key): one failure
    per column with non-finite values, naming keys; one success when there are none."""
    by_column: dict[str, list[str]] = {}
    for column, value, key in rows:
        by_column.setdefault(column, []).append(f"{key}: {value}")
    if not by_column:
        return [
            Finding(
                expectation=FINITE,
                column=None,
                success=True,
                observed=f"{len(columns)} floating-point column(s), no NaN or infinity",
            )
        ]
    return [
        Finding(
            expectation=FINITE,
            column=column,
            success=False,
            observed=f"{len(found)} NaN or infinite value(s)",
            unexpected_count=len(found),
            examples=found[:EXAMPLES],
        )
        for column, found in sorted(by_column.items())
    ]


#: The findings of the small-cell rule (a published count in 1..min-1; a suppressed row's value).
SMALL_CELLS = "expect_no_small_cells"
SUPPRESSED_NULL = "expect_suppressed_values_null"


def check_small_cells(con: Any, relation: str, rules: MartRules) -> list[Finding]:
    """The small-cell rule on every row of `relation` (all weeks): one finding per declared
    column, failing with the offending rows' keys (`as_of_date=.., level=..: 4`)."""
    checks = [
        (SMALL_CELLS, column, f'"{column}" > 0 and "{column}" < {low}')
        for column, low in sorted(rules.small_cells.items())
    ] + [
        (SUPPRESSED_NULL, column, f'"{flag}" and "{column}" is not null')
        for column, flag in sorted(rules.suppressed_by.items())
    ]
    if not checks:
        return []
    named = ", ".join(f"'{k}=' || coalesce(\"{k}\"::varchar, 'null')" for k in rules.keys)
    key_text = f"concat_ws(', ', {named})" if rules.keys else "null::varchar"
    findings = []
    for expectation, column, bad in checks:
        rows = con.execute(
            f"select {key_text} || ': ' || coalesce(\"{column}\"::varchar, 'null') "
            f"from {relation} where {bad} order by 1"
        ).fetchall()
        rule = (
            f"NULL, 0 or >= {rules.small_cells[column]}"
            if expectation == SMALL_CELLS
            else f"NULL where {rules.suppressed_by[column]}"
        )
        findings.append(
            Finding(
                expectation=expectation,
                column=column,
                success=not rows,
                observed=f"{len(rows)} row(s) break {rule}" if rows else f"every row {rule}",
                unexpected_count=len(rows),
                examples=[r[0] for r in rows[:EXAMPLES]],
            )
        )
    return findings


def suite(rules: MartRules) -> list[dict]:
    """The mart's great-expectations suite, as GX configurations (the declared rules): not-null
    columns, keys unique, ranges. Refused here if an expectation has no SQL form (`gx_sql`)."""
    expectations = [
        configure("expect_column_values_to_not_be_null", column=c) for c in rules.not_null
    ]
    if len(rules.keys) == 1:
        expectations.append(configure("expect_column_values_to_be_unique", column=rules.keys[0]))
    elif len(rules.keys) > 1:
        expectations.append(
            configure("expect_compound_columns_to_be_unique", column_list=list(rules.keys))
        )
    for column, (low, high) in sorted(rules.ranges.items()):
        expectations.append(
            configure(
                "expect_column_values_to_be_between", column=column, min_value=low, max_value=high
            )
        )
    return check_suite(expectations)


#: The temporary table holding the rows under validation (one at a time per connection).
LATEST = "publish_gate_latest"


@contextmanager
def latest_week(con: Any, relation: str, withheld: tuple[str, ...] = ()) -> Iterator[str]:
    """The relation's latest as-of week (earlier weeks passed when they were published), without
    its withheld columns, as a temporary table in the relation's row order (`rowid`)."""
    columns = [r[0] for r in con.execute(f"describe {relation}").fetchall()]
    excluded = ", ".join(quote(c) for c in withheld if c in columns)
    select = f"select * exclude ({excluded})" if excluded else "select *"
    where = (
        f" where as_of_date = (select max(as_of_date) from {relation})"
        if "as_of_date" in columns
        else ""
    )
    con.execute(f"create or replace temp table {LATEST} as {select} from {relation}{where}")
    try:
        yield LATEST
    finally:
        con.execute(f"drop table if exists {LATEST}")


def entities(con: Any, relation: str, columns: tuple[str, ...]) -> set[str]:
    """The distinct entities of a relation as 'a|b|c' ('∅' for NULL)."""
    if not columns:
        return set()
    parts = ", ".join(f"coalesce({quote(c)}::varchar, '∅')" for c in columns)
    rows = con.execute(f"select distinct concat_ws('|', {parts}) from {relation}").fetchall()
    return {r[0] for r in rows}


def published_entities(
    con: Any, database: str, mart: str, columns: tuple[str, ...]
) -> set[str] | None:
    """The entities of a mart's latest week in an attached publish; None if it lacks the mart."""
    present = {
        c
        for (c,) in con.execute(
            "select column_name from duckdb_columns() where database_name = ? and table_name = ?",
            [database, mart],
        ).fetchall()
    }
    if not present:
        return None
    relation = f"{database}.main.{quote(mart)}"
    if "as_of_date" in present:
        relation = f"(select * from {relation} where as_of_date = (select max(as_of_date) from {relation}))"
    return entities(con, relation, columns)


def _finding(config: dict, result: dict) -> Finding:
    info, details = result["exception_info"], result["result"]
    return Finding(
        expectation=config["type"],
        column=config["kwargs"].get("column"),
        success=bool(result["success"]),
        observed=_plain(details.get("observed_value")),
        unexpected_count=details.get("unexpected_count"),
        examples=[_plain(v) for v in details.get("partial_unexpected_list") or []][:EXAMPLES],
        error=info["exception_message"] if info["raised_exception"] else None,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return str({k: _plain(v) for k, v in value.items()})
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def validate_relation(
    con: Any,
    relation: str,
    rules: MartRules,
    previous_entities: set[str] | None = None,
    sql_findings: list[Finding] | None = None,
    expectations: list[dict] | None = None,
) -> Outcome:
    """Validate a mart's latest week on a DuckDB connection: its suite (`expectations`, built
    from `rules` if not given; run by `gx_sql`), what BI users may see, and `previous_entities`
    from the last publish, if any; `sql_findings`: the rules over every week (`check_finite`,
    `check_small_cells`)."""
    with latest_week(con, relation, rules.withheld) as latest:
        rows = con.execute(f"select count(*) from {latest}").fetchall()[0][0]
        findings = [_finding(e, r) for e, r in evaluate(con, latest, expectations or suite(rules))]
        findings += _only_what_bi_users_may_see(con, latest, rules)
        if rules.entity and previous_entities:
            present = entities(con, latest, rules.entity)
            findings.append(_nothing_disappeared(present, rules.entity, previous_entities))
    findings.extend(sql_findings or [])
    return Outcome(target=f"marts/{rules.mart}", rows=rows, findings=findings)


@contextmanager
def _in_memory(frame: Any, table: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A pandas (or polars, Arrow) frame as a DuckDB table, in its row order."""
    with duckdb.connect() as con:
        con.register("frame_", frame)
        con.execute(f"create table {quote(table)} as select * from frame_")
        con.unregister("frame_")
        yield con


def validate_mart(
    frame: Any,
    rules: MartRules,
    previous_entities: set[str] | None = None,
    non_finite: list[Finding] | None = None,
) -> Outcome:
    """`validate_relation` on a frame (every week of a mart, as read from the warehouse)."""
    with _in_memory(frame, rules.mart) as con:
        return validate_relation(con, quote(rules.mart), rules, previous_entities, non_finite)


def _nothing_disappeared(present: set[str], entity: tuple[str, ...], previous: set[str]) -> Finding:
    """Every entity of the last publish is still here. A set difference, not GX's
    distinct-values expectation: that one carries the whole value set in its configuration and
    its result, which took 93 s for the 250k KPI rows of the `large` portfolio."""
    missing = sorted(previous - present)
    return Finding(
        expectation=ENTITIES_PRESENT,
        column="+".join(entity),
        success=not missing,
        observed=f"{len(missing)} of {len(previous)} previously published missing",
        unexpected_count=len(missing),
        examples=missing[:EXAMPLES],
    )


#: An absolute path in text: /a/b, ~/a, C:\\a or \\\\server, at the start or after a space or
#: punctuation (so URLs, dates like 2026/11/02 and 'n/a' do not count).
ABSOLUTE_PATH = re.compile(r"(?:^|[\s('\"=:,;])(?:/[^/\s]+/|~/|[A-Za-z]:\\|\\\\[^\\\s])")
#: A quoted cell of a free-text column in 'rule on column (n rows, first at row r: value)'.
QUOTED_FREE_TEXT = re.compile(
    rf"\bon (?:{'|'.join(sorted(FREE_TEXT_COLUMNS))}) \([^)]*first at row \d+: "
)


def _only_what_bi_users_may_see(con: Any, latest: str, rules: MartRules) -> list[Finding]:
    """No free-text subject column, no free-text value where a column's meta says it could hold
    one, and no absolute server path in any text column. Examples name rows (the position in
    the latest week) and fields, never the text itself. SQL picks the candidate cells; the
    patterns are Python's, as they always were."""
    described = con.execute(f"describe {latest}").fetchall()
    columns = [r[0] for r in described]
    free_columns = sorted(FREE_TEXT_COLUMNS & set(columns))
    findings = [
        Finding(
            expectation="expect_no_free_text_columns",
            column=None,
            success=not free_columns,
            observed=f"{len(free_columns)} free-text subject column(s) published",
            unexpected_count=len(free_columns),
            examples=free_columns[:EXAMPLES],
        )
    ]
    for column, field_column in sorted(rules.free_text_fields.items()):
        bad = (
            con.execute(
                f"select rowid, {quote(field_column)} from {latest} "
                f"where {quote(field_column)} in (select unnest(?::varchar[])) "
                f"and {quote(column)} is not null order by rowid",
                [sorted(FREE_TEXT_COLUMNS)],
            ).fetchall()
            if column in columns and field_column in columns
            else []
        )
        findings.append(
            Finding(
                expectation="expect_free_text_values_withheld",
                column=column,
                success=not bad,
                unexpected_count=len(bad),
                examples=[f"row {i}: {field_column}={value}" for i, value in bad][:EXAMPLES],
            )
        )
    for column in rules.quotes_cells:
        candidates = (
            con.execute(
                f"select rowid, {quote(column)}::varchar from {latest} "
                f"where contains({quote(column)}::varchar, 'first at row') order by rowid"
            ).fetchall()
            if column in columns
            else []
        )
        bad = [i for i, text in candidates if QUOTED_FREE_TEXT.search(text)]
        findings.append(
            Finding(
                expectation="expect_no_quoted_free_text",
                column=column,
                success=not bad,
                unexpected_count=len(bad),
                examples=[f"row {i}" for i in bad][:EXAMPLES],
            )
        )
    text = [r[0] for r in described if r[1] == "VARCHAR"]
    paths = []
    if text:
        cells = ", ".join(f"{{'i': {i}, 'v': {quote(c)}}}" for i, c in enumerate(text))
        candidates = con.execute(
            f"select s.i, s.v from (select rowid as r, unnest([{cells}]) as s from {latest}) "
            "where contains(s.v, '/') or contains(s.v, '\\') order by s.i, r"
        ).fetchall()
        paths = [f"{text[i]}: {v}" for i, v in candidates if ABSOLUTE_PATH.search(v)]
    findings.append(
        Finding(
            expectation="expect_no_absolute_paths",
            column=None,
            success=not paths,
            unexpected_count=len(paths),
            examples=paths[:EXAMPLES],
        )
    )
    return findings


#: The finding of a check whose evaluation raised outside great-expectations (e.g. the mart
#: could not be read): a validator error for that check's target only.
EVALUATION = "validation_ran"


def validator_broke(target: str, error: BaseException) -> Outcome:
    """The outcome of a check whose evaluation raised: failed as a validator error naming the
    exception (one line), so the other checks of the gate step are still evaluated."""
    message = " ".join(f"{type(error).__name__}: {error}".split())[:500]
    return Outcome(
        target=target,
        rows=0,
        findings=[Finding(expectation=EVALUATION, column=None, success=False, error=message)],
    )


def freshness(con: Any, relation: str, max_days: int) -> Outcome:
    """Each SMO's newest delivery in the latest week is at most `max_days` before the as-of date:
    one row per SMO, validated by the suite's range expectation."""
    summary = "publish_gate_freshness"
    with latest_week(con, relation) as latest:
        con.execute(
            f"""
            create or replace temp table {summary} as
            select smo_id, max(as_of_date)::date - max(delivery_date)::date as days_behind
            from {latest} where smo_id is not null group by smo_id order by smo_id
            """
        )
    try:
        config = configure(
            "expect_column_values_to_be_between", column="days_behind", min_value=0,
            max_value=max_days,
        )  # fmt: skip
        findings = [_finding(e, r) for e, r in evaluate(con, summary, check_suite([config]))]
        late = con.execute(
            f"select smo_id, days_behind from {summary} where days_behind > ? order by rowid",
            [max_days],
        ).fetchall()
        rows = con.execute(f"select count(*) from {summary}").fetchall()[0][0]
    finally:
        con.execute(f"drop table if exists {summary}")
    for f in findings:
        if not f.success and not f.error:
            f.examples = [f"{smo}: {days} days" for smo, days in late][:EXAMPLES]
    return Outcome(target="marts/deliveries_used", rows=rows, findings=findings)


def validate_freshness(deliveries_used: Any, max_days: int) -> Outcome:
    """`freshness` on a frame of deliveries_used."""
    with _in_memory(deliveries_used, "deliveries_used") as con:
        return freshness(con, "deliveries_used", max_days)
