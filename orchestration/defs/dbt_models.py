"""Every dbt model as an asset and every dbt test as an asset check (error severity = blocking)."""

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from ingest.settings import WAREHOUSE_WRITER_POOL
from orchestration.dbt import dbt_project, translator
from orchestration.resources import DuckDBWarehouse


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_WRITER_POOL,
)
def warehouse_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse
):
    # `build` interleaves tests with models, so a failing error-severity test stops everything
    # downstream of it inside dbt too, not only in Dagster.
    with warehouse.exported_to_dbt():
        yield from dbt.cli(["build"], context=context).stream()
