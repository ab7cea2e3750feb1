"""Every dbt model as an asset and every dbt test as an asset check (error severity = blocking).

This is the warehouse gate: after each `dbt build` every test's outcome is stored in
ops.gate_results, and a failed build ends the step with a message naming what failed.
"""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from core.gate_results import record_gate_results
from orchestration.lib.dbt import dbt_project, load_manifest, prune_run_targets, translator
from orchestration.lib.rebuild_fingerprint import fingerprint, last_build, record_build
from orchestration.lib.warehouse import WAREHOUSE_WRITER_POOL, DuckDBWarehouse

#: Run tag that forces a rebuild even when nothing the build reads has changed.
REBUILD_TAG = "smo/rebuild"

SHOWN = 10


def warehouse_gate_rows(run_results: dict, manifest: dict, run_id: str) -> list[dict]:
    """One ops.gate_results row per dbt data test and unit test of a build."""
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


def _failure_summary(run_results: dict) -> str:
    failed = [
        f"{r['unique_id'].split('.')[-2] if r['unique_id'].startswith('test.') else r['unique_id']}"
        f" [{r['status']}]: {(r.get('message') or '').strip()[:200]}"
        for r in run_results.get("results", [])
        if r["status"] in ("fail", "error")
    ]
    head = f"dbt build failed: {len(failed)} node(s) failed or errored; downstream models were skipped."
    return "\n".join([head, *failed[:SHOWN]])


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_WRITER_POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse
):
    full = set(context.selected_asset_keys) == set(context.assets_def.keys)
    with warehouse.connect() as con:
        inputs = fingerprint(con, load_manifest())
        previous = last_build(con)
    forced = context.run.tags.get(REBUILD_TAG, "").lower() == "true"
    if full and not forced and previous is not None and previous[0] == inputs:
        # Nothing to yield: the marts, their checks, the publish and the report stay as the
        # last complete build left them (Dagster skips everything downstream).
        context.log.info(
            f"Nothing dbt reads has changed since run {previous[1]} (no new deliveries, registry "
            f"versions, project or code changes): dbt build skipped, the published marts stay. "
            f"Tag a run {REBUILD_TAG}=true to rebuild anyway."
        )
        return
    # `build` interleaves tests with models, so a failing error-severity test stops everything
    # downstream of it inside dbt too, not only in Dagster.
    with warehouse.exported_to_dbt():
        invocation = dbt.cli(["build"], context=context, raise_on_error=False)
        yield from invocation.stream()
    run_results = invocation.get_artifact("run_results.json")
    prune_run_targets(invocation.target_path.parent, context.op_def.name)
    with warehouse.connect() as con:
        record_gate_results(
            con, warehouse_gate_rows(run_results, invocation.manifest, context.run_id)
        )
    if not invocation.is_successful():
        raise dg.Failure(description=_failure_summary(run_results))
    if full:
        with warehouse.connect() as con:
            record_build(con, inputs, context.run_id)
