"""One SMO never blocks another: blame a failed warehouse build on particular deliveries.

When a blocking dbt test fails (or, after a passing build, a publish-gate rule would:
`publish_preflight`), its failing rows are read back from the warehouse (the test's
compiled SQL from run_results.json). If they name SMOs (an `smo_id` column, or rows of a model
that has one), the culprits are those SMOs' deliveries that became current since the last
passing build, in the feeds the failing model reads (its raw sources in the manifest). Those
deliveries are pulled (`ingest.retraction`) and dbt builds again for everyone else. Failures
that name no SMO, model errors, and failures with no new delivery to blame still block.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from expectations.gx_sql import SQL_FORMS, quote
from ingest.retraction import FailedCheck, current_since

#: The publish gate's range rule in SQL (expectations/gx_sql.py), so the preflight and the gate
#: cannot disagree on what is out of range.
BETWEEN = SQL_FORMS["expect_column_values_to_be_between"]

#: Failing rows read back per test to find the SMOs (the test's own count is reported too).
ROWS_READ = 10_000


@dataclass
class Attribution:
    #: delivery id -> the failed checks blamed on it
    culprits: dict[int, list[FailedCheck]] = field(default_factory=dict)
    #: failed nodes that could not be blamed on a delivery, with why
    unattributed: list[str] = field(default_factory=list)


def raw_feeds_of(manifest: dict, unique_id: str) -> set[str]:
    """The raw.<feed> sources a node reads, directly or through other models."""
    nodes = {**manifest.get("nodes", {}), **manifest.get("sources", {})}
    feeds, seen, stack = set(), set(), [unique_id]
    while stack:
        node = nodes.get(stack.pop(), {})
        for parent in node.get("depends_on", {}).get("nodes", []):
            if parent in seen:
                continue
            seen.add(parent)
            source = manifest.get("sources", {}).get(parent)
            if source is not None:
                if source.get("source_name") == "raw":
                    feeds.add(source["name"])
            else:
                stack.append(parent)
    return feeds


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [r[0] for r in con.execute(f"describe {relation}").fetchall()]


def failing_smos(
    con: duckdb.DuckDBPyConnection, test: dict, model: dict, compiled_sql: str
) -> tuple[set[str], set[tuple[str, str]] | None, str | None]:
    """SMOs named by a failing test's rows, the (SMO, study) pairs when the rows carry a study
    (None when they do not), and one failing row as text (for the report)."""
    rows = con.execute(f"select * from ({compiled_sql}) as failing limit {ROWS_READ}")
    names = [d[0] for d in rows.description]
    found = rows.fetchall()
    example = ", ".join(f"{k}={v}" for k, v in zip(names, found[0], strict=True)) if found else None
    if "smo_id" in names:
        index = names.index("smo_id")
        smos = {r[index] for r in found if r[index] is not None}
        studies = None
        if "study_id" in names:
            at = names.index("study_id")
            studies = {(r[index], r[at]) for r in found if r[index] is not None}
        return smos, studies, example
    # Built-in tests return only the tested column (not_null, unique, accepted_values,
    # relationships): find the model's rows that carry the failing values.
    column = test.get("column_name") or test.get("test_metadata", {}).get("kwargs", {}).get(
        "column_name"
    )
    relation = model.get("relation_name")
    if not column or not relation or "smo_id" not in _columns(con, relation):
        return set(), None, example
    if test.get("test_metadata", {}).get("name") == "not_null":
        where = f"{column} is null"
    elif found:
        where = f"{column} in (select {names[0]} from ({compiled_sql}) as failing)"
    else:
        return set(), None, example
    smos = con.execute(f"select distinct smo_id from {relation} where {where}").fetchall()
    return {r[0] for r in smos if r[0] is not None}, None, example


def attribute(
    con: duckdb.DuckDBPyConnection,
    run_results: dict,
    manifest: dict,
    since: dt.datetime | None,
) -> Attribution:
    """Blame every failed blocking node of a build on deliveries, where the rows allow it."""
    nodes = manifest.get("nodes", {})
    ledger = _candidates(con, since)
    outcome = Attribution()
    for result in run_results.get("results", []):
        if result["status"] not in ("fail", "error"):
            continue
        unique_id = result["unique_id"]
        node = nodes.get(unique_id, {})
        label = node.get("name", unique_id)
        if not unique_id.startswith("test.") or result["status"] == "error":
            outcome.unattributed.append(f"{label}: {result['status']} (not a failing-rows test)")
            continue
        if node.get("config", {}).get("severity", "error").lower() != "error":
            continue
        attached = node.get("attached_node") or next(
            (n for n in node.get("depends_on", {}).get("nodes", []) if n.startswith("model.")),
            None,
        )
        model = nodes.get(attached or "", {})
        try:
            smos, studies, example = failing_smos(
                con, node, model, result.get("compiled_code") or ""
            )
        except duckdb.Error as exc:
            outcome.unattributed.append(f"{label}: failing rows unreadable ({exc})")
            continue
        feeds = raw_feeds_of(manifest, attached or unique_id)
        blamed = _blame(ledger, smos, studies, feeds)
        if not blamed:
            why = (
                "its failing rows name no SMO"
                if not smos
                else f"no delivery of {', '.join(sorted(smos))} in {', '.join(sorted(feeds))} "
                "became current since the last passing build"
            )
            outcome.unattributed.append(f"{label}: {why}")
            continue
        check = FailedCheck(
            check_name=label,
            model=model.get("name", attached or ""),
            failing_rows=result.get("failures"),
            message=(result.get("message") or "").strip()[:300],
            example=example,
        )
        for delivery_id in blamed:
            outcome.culprits.setdefault(delivery_id, []).append(check)
    return outcome


def _blame(
    ledger: dict[int, tuple[str, str, set[str]]],
    smos: set[str],
    studies: set[tuple[str, str]] | None,
    feeds: set[str],
) -> list[int]:
    """The candidate deliveries of the named SMOs in the model's feeds; rows that name their
    study blame only deliveries of that study (or SMO-wide ones)."""
    return [
        delivery
        for delivery, (smo, feed, covered) in ledger.items()
        if smo in smos
        and feed in feeds
        and (studies is None or "*" in covered or any((smo, s) in studies for s in covered))
    ]


def _candidates(
    con: duckdb.DuckDBPyConnection, since: dt.datetime | None
) -> dict[int, tuple[str, str, set[str]]]:
    """Deliveries that became current since the last passing build: delivery id -> (SMO, feed,
    studies it is current for)."""
    return {
        r[0]: (r[1], r[2], set(r[3]))
        for r in con.execute(
            "select d.delivery_id, d.smo_id, d.feed, list(c.study_id) "
            "from ops.deliveries d join ops.current_deliveries c using (delivery_id) "
            "where d.delivery_id in (select unnest(?::bigint[])) group by all",
            [current_since(con, since)],
        ).fetchall()
    }


def _latest(relation: str, columns: set[str]) -> str:
    if "as_of_date" not in columns:
        return relation
    return f"(select * from {relation} where as_of_date = (select max(as_of_date) from {relation}))"


def publish_preflight(
    con: duckdb.DuckDBPyConnection,
    manifest: dict,
    published: Path | None,
    since: dt.datetime | None,
) -> Attribution:
    """The publish gate's data rules that one SMO's rows can break, run in SQL right after a
    passing build, so their failures can be blamed and pulled before the great-expectations
    gate would block every SMO's publish: values outside a column's declared range, NaN or
    infinity (the same SQL as the gate's finite rule), and entities of the last publish that are
    gone. (Keys and not-null are dbt tests and contracts
    already.) What cannot be blamed is left to the publish gate, which still blocks."""
    from expectations.publish_gate import floating_columns, mart_rules, non_finite_sql

    ledger = _candidates(con, since)
    outcome = Attribution()
    if not ledger:
        return outcome
    models = {
        n["name"]: n
        for n in manifest.get("nodes", {}).values()
        if n["resource_type"] == "model" and n["schema"] == "marts"
    }
    attached = False
    if published is not None and published.exists():
        con.execute(f"attach '{published}' as previous_publish (read_only)")
        attached = True
    try:
        for mart, rules in sorted(mart_rules(manifest).items()):
            node = models.get(mart)
            if node is None:
                continue
            relation = f"marts.{mart}"
            described = con.execute(f"describe {relation}").fetchall()
            types = {r[0]: r[1] for r in described}
            columns = set(types)
            if "smo_id" not in columns:
                continue
            latest = _latest(relation, columns)
            study = "study_id" if "study_id" in columns else "null::varchar"
            feeds = raw_feeds_of(manifest, node["unique_id"])
            # Every range of the mart in one scan (this runs after every build with new
            # deliveries): one row per (row, violated column). The range test is the publish
            # gate's own SQL form (NaN is left to the finite rule below, as in the gate).
            violated = []
            for column, (low, high) in sorted(rules.ranges.items()):
                if column not in types or (low is None and high is None):
                    continue
                where = BETWEEN.unexpected(
                    {"column": column, "min_value": low, "max_value": high}, types
                )
                violated.append(
                    f"case when {where} then {{'column': '{column}', "
                    f"'value': {quote(column)}::varchar}} end"
                )
            if violated:
                found = con.execute(
                    f"""
                    select smo_id, study_id, v.column, v.value from (
                        select smo_id, {study} as study_id,
                               unnest(list_filter([{", ".join(violated)}], lambda x: x is not null)) as v
                        from {latest} as m
                    ) order by all
                    """
                ).fetchall()
                by_column: dict[str, list[tuple]] = {}
                for smo, study_id, column, value in found:
                    by_column.setdefault(column, []).append((smo, study_id, value))
                for column, rows in sorted(by_column.items()):
                    low, high = rules.ranges[column]
                    rule = f"publish range {low}..{high}"
                    _add(outcome, ledger, rows, feeds, rule, mart, column)
            floating = floating_columns(described)
            sql = non_finite_sql(latest, floating, rules.keys, carry=("smo_id", study))
            non_finite: dict[str, list[tuple]] = {}
            for smo, study_id, column, value, key in con.execute(sql).fetchall() if sql else []:
                non_finite.setdefault(column, []).append((smo, study_id, f"{key}: {value}"))
            for column, rows in sorted(non_finite.items()):
                _add(outcome, ledger, rows, feeds, "publish finite (NaN/infinity)", mart, column)
            if attached and rules.entity and set(rules.entity) <= columns:
                previous_columns = {
                    c
                    for (c,) in con.execute(
                        "select column_name from duckdb_columns() "
                        "where database_name = 'previous_publish' and table_name = ?",
                        [mart],
                    ).fetchall()
                }
                if not set(rules.entity) <= previous_columns:
                    continue
                match = " and ".join(f"p.{c} is not distinct from m.{c}" for c in rules.entity)
                p_study = "p.study_id" if "study_id" in rules.entity else "null::varchar"
                rows = con.execute(
                    f"""
                    select p.smo_id, {p_study}, concat_ws('|', {", ".join(f"p.{c}" for c in rules.entity)})
                    from {_latest(f"previous_publish.main.{mart}", previous_columns)} as p
                    where not exists (select 1 from {latest} as m where {match})
                    """
                ).fetchall()
                _add(outcome, ledger, rows, feeds, "published entity disappeared", mart, None)
    finally:
        if attached:
            con.execute("detach previous_publish")
    return outcome


def _add(
    outcome: Attribution,
    ledger: dict[int, tuple[str, str, set[str]]],
    rows: list[tuple],
    feeds: set[str],
    rule: str,
    mart: str,
    column: str | None,
) -> None:
    if not rows:
        return
    smos = {r[0] for r in rows if r[0] is not None}
    studies = {(r[0], r[1]) for r in rows if r[0] is not None and r[1] is not None} or None
    label = f"{rule} on {mart}" + (f".{column}" if column else "")
    blamed = _blame(ledger, smos, studies, feeds)
    if not blamed:
        outcome.unattributed.append(f"{label}: no new delivery of {sorted(smos)} to blame")
        return
    check = FailedCheck(
        check_name=f"publish_gate: {label}",
        model=mart,
        failing_rows=len(rows),
        message=f"{len(rows)} row(s) of {mart}'s latest week",
        example=f"smo_id={rows[0][0]}, study_id={rows[0][1]}, value={rows[0][2]}",
    )
    for delivery_id in blamed:
        outcome.culprits.setdefault(delivery_id, []).append(check)
