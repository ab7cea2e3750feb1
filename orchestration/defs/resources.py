"""Resources and the executor, bound once for every asset in the code location."""

import dagster as dg

from orchestration.lib.dbt import (
    DBT_EXECUTABLE,
    DBT_GLOBAL_FLAGS,
    WarehouseDbtResource,
    dbt_project,
)
from orchestration.lib.run_health import in_process_releasing_dead_runs
from orchestration.lib.warehouse import DuckDBWarehouse


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "warehouse": DuckDBWarehouse(),
            "dbt": WarehouseDbtResource(
                project_dir=dbt_project,
                dbt_executable=DBT_EXECUTABLE,
                global_config_flags=DBT_GLOBAL_FLAGS,
            ),
        },
        # In-process on purpose: every step writes the one DuckDB file (so steps could not run in
        # parallel anyway) and a process per step would pay the dagster_dbt/GX imports each time.
        # Measured numbers are in the README's Performance section. Before the first step, runs
        # whose process died release their pool slots (orchestration/lib/run_health.py).
        executor=in_process_releasing_dead_runs,
    )
