"""One SMO never blocks another: blame a failed warehouse build on particular deliveries.

When a blocking dbt test fails, its failing rows are read back from the warehouse (the test's
compiled SQL from run_results.json). If they name SMOs (an `smo_id` column, or rows of a model
that has one), the culprits are those SMOs' deliveries that became current since the last
passing build, in the feeds the failing model reads (its raw sources in the manifest). Those
deliveries are pulled (`ingest.retraction`) and dbt builds again for everyone else. Failures
that name no SMO, model errors, and failures with no new delivery to blame still block.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb

from ingest.retraction import FailedCheck, current_since

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
    candidates = current_since(con, since)
    ledger = {
        r[0]: (r[1], r[2], set(r[3]))
        for r in con.execute(
            "select d.delivery_id, d.smo_id, d.feed, list(c.study_id) "
            "from ops.deliveries d join ops.current_deliveries c using (delivery_id) "
            "where d.delivery_id in (select unnest(?::bigint[])) group by all",
            [candidates],
        ).fetchall()
    }
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
        blamed = [
            delivery
            for delivery, (smo, feed, covered) in ledger.items()
            if smo in smos
            and feed in feeds
            # rows that name their study blame only deliveries of that study (or SMO-wide ones)
            and (studies is None or "*" in covered or any((smo, s) in studies for s in covered))
        ]
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
