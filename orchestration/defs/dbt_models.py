"""Every dbt model as an asset and every dbt test as an asset check (error severity = blocking).

This is the warehouse gate: after each `dbt build` every test's outcome is stored in
ops.gate_results. When blocking tests fail on rows that name SMOs, the deliveries behind them
are pulled (`orchestration.lib.isolation`) and dbt builds again, so one SMO's bad data never
blocks the others' publish; what cannot be blamed on a delivery ends the step with a message
naming what failed.
"""

import time

import dagster as dg
from dagster_dbt import DbtCliInvocation, DbtCliResource, dbt_assets
from dagster_dbt.metadata_set import DbtMetadataSet

from core.gate_results import record_gate_results
from core.settings import load_settings
from core.tables import markdown_table
from core.warehouse_lock import WarehouseLocked, is_lock_conflict, lock_holder
from ingest.retraction import WAREHOUSE_RULE, pull_delivery
from orchestration.lib.dbt import (
    BUILD_EXCLUDES,
    dbt_project,
    load_manifest,
    prune_run_targets,
    translator,
)
from orchestration.lib.isolation import attribute, publish_preflight
from orchestration.lib.rebuild_fingerprint import (
    fingerprint,
    last_build,
    last_passing_build_at,
    record_build,
)
from orchestration.lib.unchanged_checks import (
    REPORTED,
    log_unchanged_downstream,
    pending_downstream_checks,
    unchanged_results,
)
from orchestration.lib.warehouse import (
    WAREHOUSE_WRITER_POOL,
    DuckDBWarehouse,
    locked_as_failure,
)
from publishing.bi_database import published_path, published_run_id
from publishing.report import report_matches, write_report

#: Run tag that forces a rebuild even when nothing the build reads has changed.
REBUILD_TAG = "smo/rebuild"

SHOWN = 10


#: Rebuilds after pulling deliveries; each round pulls what the previous build blamed.
MAX_PULL_ROUNDS = 2


def warehouse_gate_rows(run_results: dict, manifest: dict, run_id: str) -> list[dict]:
    """One ops.gate_results row per dbt test of a build (data tests; a refresh's build leaves
    unit tests out, `BUILD_EXCLUDES`, but a build by hand that runs them records them too)."""
    nodes = {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}
    rows = []
    for result in run_results.get("results", []):
        unique_id = result["unique_id"]
        if not unique_id.startswith(("test.", "unit_test.")):
            continue
        node = nodes.get(unique_id, {})
        attached = node.get("attached_node") or next(
            iter(node.get("depends_on", {}).get("nodes", [])), ""
        )
        rows.append(
            {
                "run_id": run_id,
                "gate": "warehouse",
                "target": attached.split(".")[-1] if attached else node.get("model", ""),
                "check_name": node.get("name", unique_id),
                "success": result["status"] == "pass",
                "observed_value": result.get("failures"),
                "details": {
                    "status": result["status"],
                    "severity": node.get("config", {}).get("severity"),
                    "kind": unique_id.split(".")[0],
                    "message": result.get("message"),
                },
            }
        )
    return rows


def last_gate_outcomes(con, run_id: str) -> dict[str, tuple[bool, str | None]]:
    """dbt test name -> (passed, severity) as the warehouse gate recorded them for a build."""
    rows = con.execute(
        "select check_name, success, json_extract_string(details, '$.severity') "
        "from ops.gate_results where run_id = ? and gate = 'warehouse' order by evaluated_at",
        [run_id],
    ).fetchall()
    return {name: (bool(success), severity) for name, success, severity in rows}


def with_row_counts(con, events: list, assets_def: dg.AssetsDefinition) -> list:
    """Each table model's materialization with its row count (`dagster/row_count`), counted here
    after dbt closed the file: dagster-dbt's `fetch_row_counts()` counts while dbt still holds
    the one writer's lock. The asset key is the relation (`[schema, table]`, the translator).
    Every relation is counted in one query (one round trip, not one per model). Views are left
    out, as dagster-dbt leaves them out: counting one runs its whole query (at `large`,
    int_snapshot__visits joins 6.7M visits)."""
    keys = {name: key for key, name in assets_def.output_names_by_entity_key.items()}
    views = {
        key
        for key, spec in assets_def.specs_by_key.items()
        if DbtMetadataSet.extract(spec.metadata).materialization_type == "view"
    }
    built = [
        e.output_name
        for e in events
        if isinstance(e, dg.Output) and keys[e.output_name] not in views
    ]
    counts: dict[str, int] = {}
    if built:
        query = " union all ".join(
            f'select {i} as i, count(*) as n from "{keys[name].path[0]}"."{keys[name].path[1]}"'
            for i, name in enumerate(built)
        )
        counts = {built[i]: n for i, n in con.execute(query).fetchall()}
    return [
        e.with_metadata(
            {**e.metadata, "dagster/row_count": dg.MetadataValue.int(counts[e.output_name])}
        )
        if isinstance(e, dg.Output) and e.output_name in counts
        else e
        for e in events
    ]


def _failure_summary(run_results: dict, pulled: list) -> str:
    failed = [
        f"{r['unique_id'].split('.')[-2] if r['unique_id'].startswith('test.') else r['unique_id']}"
        f" [{r['status']}]: {(r.get('message') or '').strip()[:200]}"
        for r in run_results.get("results", [])
        if r["status"] in ("fail", "error")
    ]
    head = f"dbt build failed: {len(failed)} node(s) failed or errored; downstream models were skipped."
    pulled_lines = [
        f"pulled first: delivery {p.delivery_id} {p.smo_id}/{p.file_name}" for p in pulled
    ]
    return "\n".join([head, *failed[:SHOWN], *pulled_lines])


def _dbt_build(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse
) -> tuple[DbtCliInvocation, list]:
    """`dbt build` started once the warehouse is free, and started again when a foreign process
    took the file between that check and dbt opening it (dbt then stops before building
    anything: it opens the file first to list schemas, and keeps it open, profiles.yml)."""
    bound = load_settings().warehouse_lock_wait_seconds
    start = time.monotonic()
    while True:
        warehouse.wait_until_free("dbt build", max(0.0, bound - (time.monotonic() - start)))
        invocation = dbt.cli(["build", *BUILD_EXCLUDES], context=context, raise_on_error=False)
        events = list(invocation.stream())
        error = invocation.get_error()
        if error is None or not is_lock_conflict(str(error)):
            return invocation, events
        holder = lock_holder(str(error))
        waited = time.monotonic() - start
        if waited >= bound:
            with locked_as_failure():
                raise WarehouseLocked(
                    warehouse.resolved_path, holder, waited, warehouse.snapshot_path
                )
        context.log.warning(
            f"dbt build could not open {warehouse.resolved_path}: {holder.describe()} took it "
            "first; starting dbt build again once it is free."
        )
        time.sleep(1)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_WRITER_POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse
):
    full = set(context.selected_asset_keys) == set(context.assets_def.keys)
    REPORTED.reported.clear()  # a build that runs leaves no check's warning silenced
    with warehouse.connect() as con:
        inputs = fingerprint(con, load_manifest())
        previous = last_build(con)
    forced = context.run.tags.get(REBUILD_TAG, "").lower() == "true"
    settings = load_settings()
    published = published_path(settings.publish_dir)
    if full and not forced and previous is not None and previous[0] == inputs:
        published_by = published_run_id(settings.publish_dir)
        if published_by == previous[1]:
            # Nothing to yield: the marts, their checks, the publish and the report stay as the
            # last complete build left them (Dagster skips everything downstream). A report left
            # behind by a run killed after its publish is rendered again from the BI file.
            if not report_matches(settings.publish_dir):
                report = write_report(settings.publish_dir, keep=settings.publish_keep)
                context.log.warning(
                    f"The oversight report did not match the published file (publish "
                    f"{report.publish_id}): regenerated {report.latest}."
                )
            downstream = pending_downstream_checks(context)
            with warehouse.connect(read_only=True) as con:
                outcomes = last_gate_outcomes(con, previous[1])
            yield from unchanged_results(context, previous[1], outcomes)
            repeated = log_unchanged_downstream(context, downstream)
            context.log.info(
                f"Nothing dbt reads has changed since run {previous[1]} (no new deliveries, "
                f"registry versions, project or code changes), and that build is the one "
                f"published: dbt build skipped, the published marts stay; "
                f"{len(context.selected_asset_check_keys)} dbt tests and {repeated} downstream "
                f"checks report their outcome of then. Tag a run {REBUILD_TAG}=true to rebuild "
                f"anyway."
            )
            return
        # The last passing build never reached the BI file (killed or failed between the build
        # and the publish, or its publish gate failed): build again so the gates run and the
        # publish reflects every accepted delivery in the ledger.
        context.log.warning(
            f"Nothing dbt reads has changed since run {previous[1]}, but that build was not "
            f"published (the published file is from run {published_by or 'none'}): rebuilding "
            f"so that the publish gate, the publish and the report run again."
        )
    # `build` interleaves tests with models, so a failing error-severity test stops everything
    # downstream of it inside dbt too, not only in Dagster.
    pulled = []
    with warehouse.exported_to_dbt():
        for round_ in range(MAX_PULL_ROUNDS + 1):
            # Held back until the build is final: a check that failed before its delivery was
            # pulled must not block what the rebuild publishes.
            invocation, events = _dbt_build(context, dbt, warehouse)
            run_results = invocation.get_artifact("run_results.json")
            with warehouse.connect() as con:
                record_gate_results(
                    con, warehouse_gate_rows(run_results, invocation.manifest, context.run_id)
                )
                if round_ == MAX_PULL_ROUNDS:
                    break
                since = last_passing_build_at(con)
                if invocation.is_successful():
                    # The publish gate's data rules, in SQL, while they can still be blamed
                    # on a delivery and the build redone without it.
                    blame = publish_preflight(con, invocation.manifest, published, since)
                    for why in blame.unattributed:
                        context.log.warning(f"publish gate will likely fail: {why}")
                else:
                    blame = attribute(con, run_results, invocation.manifest, since)
                    for why in blame.unattributed:
                        context.log.error(f"blocking failure not attributable to a delivery: {why}")
                if not blame.culprits:
                    break
                for delivery_id, checks in sorted(blame.culprits.items()):
                    if any(delivery_id in p.set_delivery_ids for p in pulled):
                        continue  # already pulled with its SDTM delivery set
                    done = pull_delivery(
                        con,
                        delivery_id,
                        checks,
                        quarantine=settings.quarantine_dir,
                        run_id=context.run_id,
                    )
                    pulled.append(done)
                    context.log.warning(
                        f"PULLED delivery {done.delivery_id} {done.smo_id}/{done.file_name} "
                        f"({done.feed}): {', '.join(c.check_name for c in checks)} failed on its "
                        f"rows; previous snapshot current again (deliveries "
                        f"{list(done.restored_delivery_ids) or 'none'}); report {done.report_path}. "
                        "Rebuilding for every other SMO."
                    )
    with warehouse.connect(read_only=True) as con:
        events = with_row_counts(con, events, context.assets_def)
    yield from events
    prune_run_targets(invocation.target_path.parent, context.op_def.name)
    if not invocation.is_successful():
        raise dg.Failure(description=_failure_summary(run_results, pulled))
    if full:
        with warehouse.connect() as con:
            if pulled:  # the raw tables and the ledger changed since the fingerprint was taken
                inputs = fingerprint(con, load_manifest())
            record_build(con, inputs, context.run_id)


@dg.asset_check(
    asset=dg.AssetKey(["ops", "deliveries"]),
    name="no_delivery_pulled",
    additional_deps=[dg.AssetKey(["marts", "delivery_log"])],
    pool=WAREHOUSE_WRITER_POOL,
    description="No loaded delivery had to be pulled because its rows failed a blocking warehouse "
    "check (WARN: the others were published; the pulled files are in quarantine with a report).",
)
def no_delivery_pulled(
    context: dg.AssetCheckExecutionContext, warehouse: DuckDBWarehouse
) -> dg.AssetCheckResult:
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            """
            select d.smo_id, d.file_name, d.feed,
                   string_agg(distinct json_extract_string(g.details, '$.check'), ', '),
                   d.report_path
            from ops.gate_results g join ops.deliveries d using (delivery_id)
            where g.run_id = ? and g.gate = 'warehouse' and g.check_name = ?
            group by all order by all
            """,
            [context.op_execution_context.run_id, WAREHOUSE_RULE],
        ).fetchall()
    return dg.AssetCheckResult(
        passed=not rows,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "pulled": len(rows),
            "deliveries": dg.MetadataValue.md(
                markdown_table(("smo", "file", "feed", "failed checks", "report"), rows)
            )
            if rows
            else "none",
        },
    )
