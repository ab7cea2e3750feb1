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

Validation runs on pandas frames bounded to the latest as-of week. A result whose expectation
raised (a missing column, a type GX cannot compare), or a check whose evaluation raised outside
GX (`validator_broke`: e.g. an unreadable mart), is a *validator error*, reported apart from data
failures: both block the publish, but they call for different people.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pandas as pd

from expectations.feeds import FREE_TEXT_COLUMNS

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


def latest_week(frame: pd.DataFrame) -> pd.DataFrame:
    """Bound a mart to its latest as-of week (earlier weeks passed when they were published)."""
    if "as_of_date" not in frame.columns or frame.empty:
        return frame
    return frame[frame["as_of_date"] == frame["as_of_date"].max()]


def entities(frame: pd.DataFrame, columns: tuple[str, ...]) -> set[str]:
    if not columns or frame.empty:
        return set()
    return set(_entity_series(frame, columns))


def _entity_series(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.Series:
    """'a|b|c' per row, vectorized (a row-wise join took seconds on 250k rows)."""
    parts = [frame[c].astype("string").fillna("∅") for c in columns]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key


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


@cache
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _validate(name: str, frame: pd.DataFrame, expectations: list) -> list[Finding]:
    import great_expectations as gx

    context = _context()
    source = context.data_sources.add_or_update_pandas(f"gate_{name}")
    asset = source.add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("latest").get_batch(
        batch_parameters={"dataframe": frame}
    )
    suite = gx.ExpectationSuite(name=f"publish_{name}")
    for expectation in expectations:
        suite.add_expectation(expectation)
    result = batch.validate(suite, result_format={"result_format": "SUMMARY"})
    findings = []
    for r in result.results:
        config = r.expectation_config
        info = r.exception_info or {}
        errors = (
            [info]
            if "raised_exception" in info
            else [v for v in info.values() if isinstance(v, dict)]
        )
        error = next(
            (e.get("exception_message") for e in errors if e.get("raised_exception")), None
        )
        details = r.result or {}
        findings.append(
            Finding(
                expectation=config.type,
                column=config.kwargs.get("column"),
                success=bool(r.success) and error is None,
                observed=_plain(details.get("observed_value")),
                unexpected_count=details.get("unexpected_count"),
                examples=[_plain(v) for v in (details.get("partial_unexpected_list") or [])][
                    :EXAMPLES
                ],
                error=error,
            )
        )
    return findings


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def validate_mart(
    frame: pd.DataFrame,
    rules: MartRules,
    previous_entities: set[str] | None = None,
    non_finite: list[Finding] | None = None,
) -> Outcome:
    """Validate one mart's latest week; `previous_entities` from the last publish, if any;
    `non_finite`: the findings of the SQL rules over the whole mart (`finite_findings`,
    `check_small_cells`)."""
    import great_expectations.expectations as gxe

    frame = latest_week(frame).reset_index(drop=True)
    frame = frame.drop(columns=[c for c in rules.withheld if c in frame.columns])
    expectations: list = [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in rules.not_null]
    if len(rules.keys) == 1:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=rules.keys[0]))
    elif len(rules.keys) > 1:
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(column_list=list(rules.keys)))
    for column, (low, high) in sorted(rules.ranges.items()):
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)
        )
    findings = _validate(rules.mart, frame, expectations)
    findings += _only_what_bi_users_may_see(frame, rules)
    if rules.entity and previous_entities:
        findings.append(_nothing_disappeared(frame, rules.entity, previous_entities))
    findings.extend(non_finite or [])
    return Outcome(target=f"marts/{rules.mart}", rows=len(frame), findings=findings)


def _nothing_disappeared(
    frame: pd.DataFrame, entity: tuple[str, ...], previous: set[str]
) -> Finding:
    """Every entity of the last publish is still here. A set difference, not GX's
    distinct-values expectation: that one carries the whole value set in its configuration and
    its result, which took 93 s for the 250k KPI rows of the `large` portfolio."""
    present = set(_entity_series(frame, entity)) if len(frame) else set()
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


def _only_what_bi_users_may_see(frame: pd.DataFrame, rules: MartRules) -> list[Finding]:
    """No free-text subject column, no free-text value where a column's meta says it could hold
    one, and no absolute server path in any text column. Examples name rows and fields, never
    the text itself."""
    free_columns = sorted(FREE_TEXT_COLUMNS & set(frame.columns))
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
        named = frame[field_column].isin(FREE_TEXT_COLUMNS) if field_column in frame else False
        bad = frame[named & frame[column].notna()] if column in frame else frame.iloc[:0]
        findings.append(
            Finding(
                expectation="expect_free_text_values_withheld",
                column=column,
                success=bad.empty,
                unexpected_count=len(bad),
                examples=[f"row {i}: {field_column}={bad.at[i, field_column]}" for i in bad.index][
                    :EXAMPLES
                ],
            )
        )
    for column in rules.quotes_cells:
        text = frame[column].dropna().astype(str) if column in frame else pd.Series(dtype=str)
        bad = text[text.str.contains(QUOTED_FREE_TEXT)]
        findings.append(
            Finding(
                expectation="expect_no_quoted_free_text",
                column=column,
                success=bad.empty,
                unexpected_count=len(bad),
                examples=[f"row {i}" for i in bad.index][:EXAMPLES],
            )
        )
    paths = []
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        text = values.dropna().astype(str)
        text = text[text.str.contains("/", regex=False) | text.str.contains("\\", regex=False)]
        paths += [f"{column}: {v}" for v in text[text.str.contains(ABSOLUTE_PATH)]]
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


def validate_freshness(deliveries_used: pd.DataFrame, max_days: int) -> Outcome:
    """Each SMO's newest delivery in the latest week is at most `max_days` before the as-of date."""
    import great_expectations.expectations as gxe

    week = latest_week(deliveries_used)
    per_smo = (
        week.groupby("smo_id", as_index=False)
        .agg(as_of_date=("as_of_date", "max"), last_delivery=("delivery_date", "max"))
        .assign(
            days_behind=lambda f: (
                (pd.to_datetime(f["as_of_date"]) - pd.to_datetime(f["last_delivery"])).dt.days
            )
        )
    )
    findings = _validate(
        "smo_freshness",
        per_smo,
        [gxe.ExpectColumnValuesToBeBetween(column="days_behind", min_value=0, max_value=max_days)],
    )
    for f in findings:
        if not f.success and not f.error:
            late = per_smo[per_smo["days_behind"] > max_days]
            f.examples = [f"{r.smo_id}: {r.days_behind} days" for r in late.itertuples()][:EXAMPLES]
    return Outcome(target="marts/deliveries_used", rows=len(per_smo), findings=findings)
