"""SMO deliveries: inbox -> delivery gate -> raw tables and the delivery ledger.

One multi-asset processes the whole inbox (files are independent, but all write the same
DuckDB file, so they run in one step in the writer pool). Checks per feed:
- `contract` (ERROR, blocking): every current raw row still satisfies the feed contract. The
  gate makes this impossible to fail unless rows were changed behind the pipeline's back.
- `deliveries_rejected` (WARN): files of the feed rejected in this run, with report paths.

The gate (pandera, polars, the readers) is imported when the step runs, not when the
definitions load: the UI, the sensors and every other step never need it.
"""

import time
from collections import defaultdict
from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from core.crash_points import crash_point
from core.gate_results import record_gate_results
from core.settings import load_settings
from core.tables import markdown_table
from expectations.feeds import FEEDS
from ingest.warehouse import current_rows_sql, ensure_schema
from orchestration.lib.gate_evidence import check_result_rows
from orchestration.lib.warehouse import WAREHOUSE_WRITER_POOL, DuckDBWarehouse

if TYPE_CHECKING:
    from ingest.inbox import BatchSummary

RAW_KEYS = {feed: dg.AssetKey(["raw", feed]) for feed in FEEDS}
LEDGER_KEY = dg.AssetKey(["ops", "deliveries"])
CURRENT_KEY = dg.AssetKey(["ops", "current_deliveries"])
GATE_RESULTS_KEY = dg.AssetKey(["ops", "gate_results"])
FAILURES_SHOWN = 10


def _specs() -> list[dg.AssetSpec]:
    specs = [
        dg.AssetSpec(
            key,
            group_name="raw",
            kinds={"duckdb", "python"},
            description=f"{FEEDS[feed].description} Every accepted delivery's rows, with "
            "lineage columns _delivery_id and _source_row; current rows are those of "
            "ops.current_deliveries.",
        )
        for feed, key in RAW_KEYS.items()
    ]
    specs.append(
        dg.AssetSpec(
            LEDGER_KEY,
            group_name="ops",
            kinds={"duckdb"},
            description="Delivery ledger: one row per file received (per canonical feed for "
            "an SDTM delivery set; ACCEPTED, REJECTED, DUPLICATE, SUPERSEDED), with hash, size, "
            "dates, counts, report and stored path, and file_state (PENDING until the file is "
            "moved, DONE, or LOST).",
        )
    )
    specs.append(
        dg.AssetSpec(
            CURRENT_KEY,
            group_name="ops",
            kinds={"duckdb"},
            description="Which accepted delivery is current per (SMO, feed, study).",
        )
    )
    specs.append(
        dg.AssetSpec(
            GATE_RESULTS_KEY,
            group_name="ops",
            kinds={"duckdb"},
            description="Every gate's verdicts (delivery, warehouse, publish) as oversight "
            "evidence. Created here with the delivery gate's rows; the dbt step and the publish "
            "checks append theirs.",
        )
    )
    return specs


def _check_specs() -> list[dg.AssetCheckSpec]:
    checks = []
    for feed, key in RAW_KEYS.items():
        checks.append(
            dg.AssetCheckSpec(
                "contract",
                asset=key,
                blocking=True,
                description=f"Current {feed} rows satisfy the {feed} contract.",
            )
        )
        checks.append(
            dg.AssetCheckSpec(
                "deliveries_rejected",
                asset=key,
                description=f"No {feed} delivery was rejected in this run (WARN with reports).",
            )
        )
    checks.append(
        dg.AssetCheckSpec(
            "all_files_processed",
            asset=LEDGER_KEY,
            description="Every ready inbox file matched a feed and had a usable profile.",
        )
    )
    return checks


def _contract_check(con: duckdb.DuckDBPyConnection, feed: str) -> dg.AssetCheckResult:
    from expectations.contracts import feed_schema, validate

    frame = con.sql(current_rows_sql(feed)).pl().drop("_delivery_id")
    key, columns = FEEDS[feed].key, FEEDS[feed].column_names
    # Current rows of several SMOs: keys are unique per SMO (the sponsor's list has no smo_id).
    by_smo = "smo_id" in columns and "smo_id" not in key
    schema = feed_schema(feed, unique_within=("smo_id",) if by_smo else ())
    failures = validate(frame, schema)
    by_rule = failures.group_by("rule", "column").len().sort("len", descending=True)
    return dg.AssetCheckResult(
        asset_key=RAW_KEYS[feed],
        check_name="contract",
        passed=failures.height == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "current_rows": frame.height,
            "violations": failures.height,
            "violations_by_rule": dg.MetadataValue.md(
                markdown_table(("rule", "column", "rows"), by_rule.rows())
            )
            if failures.height
            else "none",
        },
    )


def _rejected_check(summary: "BatchSummary", feed: str) -> dg.AssetCheckResult:
    rejected = [o for o in summary.outcomes if o.feed == feed and o.status == "REJECTED"]
    rows = [
        (o.smo_id, o.file_name, o.error_count, o.report_path) for o in rejected[:FAILURES_SHOWN]
    ]
    return dg.AssetCheckResult(
        asset_key=RAW_KEYS[feed],
        check_name="deliveries_rejected",
        passed=not rejected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rejected": len(rejected),
            "reports": dg.MetadataValue.md(
                markdown_table(("smo", "file", "problems", "report"), rows)
            )
            if rejected
            else "none",
        },
    )


def _unprocessed_check(summary: "BatchSummary") -> dg.AssetCheckResult:
    unmatched = [o for o in summary.outcomes if o.feed is None]
    rows = [(o.smo_id, o.file_name, o.report_path) for o in unmatched[:FAILURES_SHOWN]]
    rows += [("", str(path), why) for path, why in summary.skipped[:FAILURES_SHOWN]]
    return dg.AssetCheckResult(
        asset_key=LEDGER_KEY,
        check_name="all_files_processed",
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "unrecognized_files": len(unmatched),
            "left_in_inbox": len(summary.skipped),
            "details": dg.MetadataValue.md(markdown_table(("smo", "file", "why"), rows))
            if rows
            else "none",
        },
    )


@dg.multi_asset(
    name="smo_deliveries",
    specs=_specs(),
    check_specs=_check_specs(),
    pool=WAREHOUSE_WRITER_POOL,
    description="Runs every ready inbox file through the delivery gate into the warehouse.",
)
def smo_deliveries(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
    from ingest.inbox import process_inbox

    crash_point("smo_deliveries")
    settings = load_settings()
    started = time.perf_counter()
    with warehouse.connect() as con:
        ensure_schema(con)
        summary = process_inbox(
            con,
            inbox=settings.inbox_dir,
            archive=settings.archive_dir,
            quarantine=settings.quarantine_dir,
            profiles_dir=settings.profiles_dir,
            settle_seconds=settings.inbox_settle_seconds,
            run_id=context.run_id,
        )
        for line in summary.recovered:  # a killed run's half-done deliveries, settled
            context.log.warning(f"recovered {line}")
        for outcome in summary.outcomes:
            if outcome.status == "REJECTED":
                context.log.warning(
                    f"REJECTED {outcome.smo_id}/{outcome.file_name}: {outcome.error_count} problem(s), "
                    f"first: {outcome.first_problem} -- report: {outcome.report_path}"
                )
        for path, why in summary.skipped:
            context.log.warning(f"left in inbox {path}: {why}")
        elapsed = time.perf_counter() - started
        by_feed: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for o in summary.outcomes:
            by_feed[o.feed or "?"][o.status] += 1
            by_feed[o.feed or "?"]["rows"] += (
                o.rows if o.status in ("ACCEPTED", "SUPERSEDED") else 0
            )
        for feed, key in RAW_KEYS.items():
            current = con.execute(f"select count(*) from ({current_rows_sql(feed)})").fetchone()[0]
            stats = by_feed.get(feed, {})
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "dagster/row_count": current,
                    "deliveries_accepted": stats.get("ACCEPTED", 0) + stats.get("SUPERSEDED", 0),
                    "deliveries_rejected": stats.get("REJECTED", 0),
                    "rows_loaded": stats.get("rows", 0),
                },
            )
        last = con.execute(
            """
            select smo_id, feed, max(delivery_date) as last_accepted, count(*) as deliveries
            from ops.deliveries where status in ('ACCEPTED', 'SUPERSEDED')
            group by all order by all
            """
        ).fetchall()
        yield dg.MaterializeResult(
            asset_key=LEDGER_KEY,
            metadata={
                "files_processed": len(summary.outcomes),
                **{
                    status.lower(): summary.count(status)
                    for status in ("ACCEPTED", "REJECTED", "DUPLICATE", "SUPERSEDED")
                },
                "left_in_inbox": len(summary.skipped),
                "recovered_from_killed_runs": len(summary.recovered),
                "seconds": round(elapsed, 2),
                "last_accepted_per_smo": dg.MetadataValue.md(
                    markdown_table(("smo", "feed", "last accepted delivery", "deliveries"), last)
                ),
            },
        )
        yield dg.MaterializeResult(asset_key=CURRENT_KEY)
        contract_checks = [_contract_check(con, feed) for feed in RAW_KEYS]
        record_gate_results(
            con, check_result_rows("delivery", context.run_id, contract_checks, "violations")
        )
        (gate_rows,) = con.execute("select count(*) from ops.gate_results").fetchone()
        yield dg.MaterializeResult(
            asset_key=GATE_RESULTS_KEY, metadata={"dagster/row_count": gate_rows}
        )
        for feed, check in zip(RAW_KEYS, contract_checks, strict=True):
            yield check
            yield _rejected_check(summary, feed)
        yield _unprocessed_check(summary)
