"""Publish gate (great-expectations suites on every mart, evaluated in SQL) and the BI publish
it guards.

Each mart gets a blocking `publish_gate` check; deliveries_used also gets `smo_freshness`
(blocking), feed_freshness `stale_feeds` and unattended_signals `unattended_signals` (warnings).
All of them are one Dagster step, the multi-asset check `publish_gate`: one step (its start,
pool claim and events) and one warehouse connection, instead of a step and a connection per
check (a refresh ran 29 of them). It can subset: a run that materializes some marts evaluates only their checks.
A check whose evaluation raises fails as a validator error for its own mart; the others are
still evaluated. The publish asset depends on every mart, so Dagster runs it only when every
blocking check upstream of it passed: delivery contracts, dbt tests (warehouse gate) and these.
Every blocking check's outcome is stored in ops.gate_results. The suites run as SQL on the
warehouse connection (`expectations.gx_sql`), the last publish attached read-only once: no GX or
pandas on the way (the gate step took 7.6 s at demo scale with GX over pandas).
"""

import datetime as dt
import functools
import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from core.catalog import table_exists
from core.crash_points import crash_point
from core.gate_results import record_gate_results
from core.settings import PROJECT_ROOT, load_settings
from core.tables import markdown_table
from expectations.publish_gate import (
    Outcome,
    check_finite,
    check_small_cells,
    freshness,
    mart_rules,
    published_entities,
    suite,
    validate_relation,
    validator_broke,
)
from ingest.registry import store as registry_store
from orchestration.lib.dbt import load_manifest
from orchestration.lib.warehouse import WAREHOUSE_WRITER_POOL, DuckDBWarehouse
from publishing.bi_database import code_version, publish, published_path, table_docs
from publishing.report import headline_markdown, write_report

RULES = mart_rules(load_manifest())
#: Every mart's suite, built here so that a rule without a SQL form fails definitions load.
SUITES = {mart: suite(rules) for mart, rules in RULES.items()}
#: What BI tools are told about each mart (comments, Parquet metadata, the readme table).
DOCS = table_docs(load_manifest())
MART_KEYS = {mart: dg.AssetKey(["marts", mart]) for mart in sorted(RULES)}
PUBLISHED_KEY = dg.AssetKey(["bi", "oversight"])
REPORT_KEY = dg.AssetKey(["bi", "oversight_report"])


def _check_result(outcome: Outcome, mart_key: dg.AssetKey, name: str) -> dg.AssetCheckResult:
    errors, failures = outcome.validator_errors, outcome.failures
    return dg.AssetCheckResult(
        asset_key=mart_key,
        check_name=name,
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.summary(),
        metadata={
            "outcome": "passed"
            if outcome.success
            else ("validator_error" if errors else "data_failed"),
            "rows_validated": outcome.rows,
            "expectations": len(outcome.findings),
            "failed": dg.MetadataValue.md(
                "\n".join(f"- {f.describe()}" for f in [*errors, *failures]) or "none"
            ),
        },
    )


#: The last publish, attached read-only to the gate's connection for the entities rule.
LAST_PUBLISH = "last_publish"


def _last_publish(con) -> str | None:
    """The attached last publish (attached on first use), or None before the first publish. A
    file that cannot be attached raises in the check that needs it: a validator error there."""
    attached = con.execute(
        "select count(*) from duckdb_databases() where database_name = ?", [LAST_PUBLISH]
    ).fetchall()[0][0]
    if not attached:
        path = published_path(load_settings().publish_dir)
        if not path.exists():
            return None
        con.execute(f"attach '{_sql_text(path)}' as {LAST_PUBLISH} (read_only)")
    return LAST_PUBLISH


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")


def _mart_outcome(con, mart: str) -> Outcome:
    """The mart's suite on its latest week, the SQL rules on every week, and the entities of the
    last publish."""
    rules = RULES[mart]
    publish_db = _last_publish(con) if rules.entity else None
    previous = published_entities(con, publish_db, mart, rules.entity) if publish_db else None
    finite = check_finite(con, f"marts.{mart}", rules.keys)
    finite += check_small_cells(con, f"marts.{mart}", rules)
    return validate_relation(con, f"marts.{mart}", rules, previous, finite, SUITES[mart])


def _freshness_outcome(con) -> Outcome:
    return freshness(con, "marts.deliveries_used", load_settings().freshness_max_days)


def _stale_feeds(con) -> dg.AssetCheckResult:
    stale = con.execute(
        """
        select smo_id, feed, last_accepted_delivery_date, age_days, stale_after_days,
               rejected_since_last_accepted
        from marts.feed_freshness
        where as_of_date = (select max(as_of_date) from marts.feed_freshness) and is_stale
        order by smo_id, feed
        """
    ).fetchall()
    return dg.AssetCheckResult(
        asset_key=MART_KEYS["feed_freshness"],
        check_name="stale_feeds",
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(stale)} stale feed(s): "
            + ", ".join(f"{smo} {feed}" for smo, feed, *_ in stale)
            + f" (older than {stale[0][4]} days)"
            if stale
            else "Every SMO feed has an accepted delivery within the staleness threshold."
        ),
        metadata={
            "stale_feeds": len(stale),
            "stale": dg.MetadataValue.md(
                markdown_table(
                    ["SMO", "feed", "last accepted", "age (days)", "rejected since"],
                    [
                        [smo, feed, last or "never", age, rejected]
                        for smo, feed, last, age, _limit, rejected in stale
                    ],
                )
                if stale
                else "none"
            ),
        },
    )


def _unattended_signals(con) -> dg.AssetCheckResult:
    rows = con.execute(
        """
        select study_id, coalesce(site_id || ' (' || smo_id || ')', 'study-level'),
               coalesce(kri_id, 'QTL ' || qtl_id), started_week, action_due_by,
               weeks_since_start, actions_list_in_effect
        from marts.unattended_signals
        where as_of_date = (select max(as_of_date) from marts.unattended_signals)
          and is_open and state = 'unattended'
        order by all
        """
    ).fetchall()
    no_list = " (no oversight actions list delivered yet)" if rows and not rows[0][6] else ""
    return dg.AssetCheckResult(
        asset_key=MART_KEYS["unattended_signals"],
        check_name="unattended_signals",
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(rows)} unattended signal(s){no_list}: "
            + "; ".join(
                f"{study} {where} {what}, {weeks} weeks since start"
                for study, where, what, _s, _d, weeks, _l in rows
            )
            if rows
            else "Every open red site flag and QTL exceedance has an action or is within its window."
        ),
        metadata={
            "unattended_signals": len(rows),
            "unattended": dg.MetadataValue.md(
                markdown_table(
                    ["study", "site (SMO)", "KRI or QTL", "started", "action due by", "weeks"],
                    [list(r[:6]) for r in rows],
                )
                if rows
                else "none"
            ),
        },
    )


def _gate_spec(mart: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "publish_gate",
        asset=MART_KEYS[mart],
        blocking=True,
        description=f"great-expectations suite (run in SQL) on {mart}'s latest week: keys "
        "unique and not null, values within their possible ranges, nothing published before has "
        "disappeared; and "
        "no NaN or infinity and no demographic cell under 5 in any week.",
    )


#: Every check of the gate step: blocking ones (ERROR) produce an Outcome that is stored in
#: ops.gate_results; warnings (WARN) produce their result directly.
GATE_CHECKS: dict[dg.AssetCheckKey, tuple[dg.AssetCheckSpec, Callable]] = {
    **{
        dg.AssetCheckKey(MART_KEYS[mart], "publish_gate"): (
            _gate_spec(mart),
            functools.partial(_mart_outcome, mart=mart),
        )
        for mart in MART_KEYS
    },
    dg.AssetCheckKey(MART_KEYS["deliveries_used"], "smo_freshness"): (
        dg.AssetCheckSpec(
            "smo_freshness",
            asset=MART_KEYS["deliveries_used"],
            blocking=True,
            description="Every SMO's newest delivery is at most SMO_FRESHNESS_MAX_DAYS days "
            "older than the as-of date.",
        ),
        _freshness_outcome,
    ),
    dg.AssetCheckKey(MART_KEYS["feed_freshness"], "stale_feeds"): (
        dg.AssetCheckSpec(
            "stale_feeds",
            asset=MART_KEYS["feed_freshness"],
            blocking=False,
            description="Warns when an SMO feed's newest accepted delivery is older than "
            "SMO_STALE_FEED_AFTER_DAYS (default 8) on the as-of date: a missed or rejected "
            "weekly file.",
        ),
        _stale_feeds,
    ),
    dg.AssetCheckKey(MART_KEYS["unattended_signals"], "unattended_signals"): (
        dg.AssetCheckSpec(
            "unattended_signals",
            asset=MART_KEYS["unattended_signals"],
            blocking=False,
            description="Warns when a red site flag or QTL exceedance had no oversight action "
            "opened within SMO_ACTION_DUE_DAYS (default 14) of its start (spec 4: escalation is "
            "measured).",
        ),
        _unattended_signals,
    ),
}


def _evaluate(con, run_id: str, key: dg.AssetCheckKey) -> dg.AssetCheckResult:
    """One check's result. Its evaluation raising (an unreadable mart, a bug in a rule) fails
    that check as a validator error, never the step: the other checks are still reported."""
    spec, evaluate = GATE_CHECKS[key]
    target = key.asset_key.to_user_string()
    if not spec.blocking:
        try:
            return evaluate(con)
        except Exception as exc:  # noqa: BLE001 - this check's result says it broke
            outcome = validator_broke(target, exc)
            return dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                description=outcome.summary(),
                metadata={"outcome": "validator_error"},
            )
    try:
        outcome = evaluate(con)
    except Exception as exc:  # noqa: BLE001 - this check's result says it broke
        outcome = validator_broke(target, exc)
    record_gate_results(con, outcome.gate_rows(run_id))
    return _check_result(outcome, key.asset_key, key.name)


@dg.multi_asset_check(
    name="publish_gate",
    specs=[spec for spec, _ in GATE_CHECKS.values()],
    can_subset=True,
    pool=WAREHOUSE_WRITER_POOL,
    description="The publish gate in one step: every selected check of the marts, over one "
    "warehouse connection.",
)
def publish_gate(context: dg.AssetCheckExecutionContext, warehouse: DuckDBWarehouse):
    crash_point("publish_gate")
    selected = context.selected_asset_check_keys
    with warehouse.connect() as con:
        try:
            for key in GATE_CHECKS:
                if key in selected:
                    yield _evaluate(con, context.run.run_id, key)
        finally:
            con.execute(f"detach database if exists {LAST_PUBLISH}")


def _registry_timestamp(con) -> str | None:
    """The registry's dataTimestamp of the newest fetch, if the registry was fetched at all."""
    if not table_exists(con, "registry", "fetches"):
        return None
    return con.execute("select max(data_timestamp) from registry.fetches").fetchall()[0][0]


@dg.asset(
    key=PUBLISHED_KEY,
    deps=list(MART_KEYS.values()),
    group_name="bi",
    kinds={"duckdb", "parquet"},
    pool=WAREHOUSE_WRITER_POOL,
    description="The BI database (read-only DuckDB, storage v1.5.0) and a Parquet set of every "
    "mart (parquet/current), each replaced atomically; runs only when every upstream gate passed. "
    "Tables and columns carry their dbt descriptions (comments, Parquet field metadata) and a "
    "readme table gives each table's grain and how to count it.",
)
def bi_oversight(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
    crash_point("publish")
    settings = load_settings()
    with warehouse.connect() as con:
        stale = registry_store.stale_reason(con)
        if stale:
            context.log.warning(f"Publishing with stale registry data: {stale}")
        as_of = con.execute("select max(as_of_date) from marts.deliveries_used").fetchall()[0][0]
        deliveries = [
            d
            for (d,) in con.execute(
                "select distinct delivery_id from marts.deliveries_used where as_of_date = ? "
                "order by 1",
                [as_of],
            ).fetchall()
        ]
        kri_versions = [
            v
            for (v,) in con.execute(
                "select distinct version from reference.kri_definitions order by 1"
            ).fetchall()
        ]
        meta = {
            "published_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
            "dagster_run_id": context.run_id,
            "as_of_date": as_of,
            "code_version": code_version(PROJECT_ROOT),
            "kri_definitions_version": ", ".join(kri_versions),
            "deliveries_included": len(deliveries),
            "delivery_ids": json.dumps(deliveries),
            "registry_data_timestamp": _registry_timestamp(con),
            "registry_stale": stale is not None,
            "registry_stale_reason": stale,
        }
        result = publish(
            con,
            settings.publish_dir,
            # columns declared `publish: false` stay in the warehouse
            tables={mart: RULES[mart].published_source(f"marts.{mart}") for mart in MART_KEYS},
            meta=meta,
            keep=settings.publish_keep,
            docs={mart: DOCS[mart] for mart in MART_KEYS},
        )
    context.log.info(
        f"Published {result.publish_id} to {result.path} ({len(result.tables)} tables) "
        f"in {result.seconds:.2f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "publish_id": result.publish_id,
            "path": dg.MetadataValue.path(str(result.path)),
            "parquet": dg.MetadataValue.path(str(result.parquet_current)),
            "parquet_set": dg.MetadataValue.path(str(result.parquet_set)),
            "as_of_date": str(as_of),
            "deliveries_included": len(deliveries),
            "kept_publishes": len(result.history),
            "seconds": round(result.seconds, 2),
            "tables": dg.MetadataValue.md(
                markdown_table(["table", "rows"], [(t, f"{n:,}") for t, n in result.tables.items()])
            ),
        }
    )


@dg.asset(
    key=REPORT_KEY,
    deps=[PUBLISHED_KEY],
    group_name="bi",
    kinds={"html"},
    description="The weekly oversight report: one self-contained HTML file per publish (static "
    "SVG charts, opens offline), rendered from the published BI database only.",
)
def oversight_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    settings = load_settings()
    result = write_report(settings.publish_dir, keep=settings.publish_keep)
    top = result.headline
    context.log.info(
        f"Oversight report as of {top.as_of_date}: {result.latest} ({len(result.charts)} charts)"
    )
    return dg.MaterializeResult(
        metadata={
            "report": dg.MetadataValue.url(result.latest.resolve().as_uri()),
            "report_path": dg.MetadataValue.path(str(result.latest)),
            "this_publish": dg.MetadataValue.path(str(result.path)),
            "publish_id": result.publish_id,
            "as_of_date": top.as_of_date,
            "charts": len(result.charts),
            "csv_tables": len(result.csvs),
            "red_flags": top.red_flags,
            "deliveries_rejected_this_week": top.deliveries_rejected_this_week,
            "stale_feeds": top.stale_feeds,
            "headline": dg.MetadataValue.md(headline_markdown(top)),
            "smo_scorecard": dg.MetadataValue.md(result.scorecard_markdown),
        }
    )
