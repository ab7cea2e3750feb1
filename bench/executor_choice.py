"""Measure the refresh job under Dagster's in-process and multiprocess executors.

The project runs in-process (orchestration/defs/resources.py); this script is the evidence.
Usage: `uv run python -m bench.executor_choice [repeats]` from the project root.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import dagster as dg


def _job(executor: dg.ExecutorDefinition) -> dg.JobDefinition:
    from orchestration.definitions import defs

    repo = defs().get_repository_def()
    return dg.define_asset_job(
        f"refresh_{executor.name}", selection=dg.AssetSelection.all(), executor_def=executor
    ).resolve(asset_graph=repo.asset_graph, resource_defs=repo.get_top_level_resources())


def in_process_job() -> dg.JobDefinition:
    return _job(dg.in_process_executor)


def multiprocess_job() -> dg.JobDefinition:
    return _job(dg.multiprocess_executor)


def _time_run(job_fn) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SMO_WAREHOUSE_PATH"] = os.path.join(tmp, "warehouse.duckdb")
        with dg.instance_for_test(temp_dir=tmp) as instance:
            started = time.perf_counter()
            result = dg.execute_job(dg.reconstructable(job_fn), instance=instance)
            elapsed = time.perf_counter() - started
            if not result.success:
                raise SystemExit(f"{job_fn.__name__} failed; see the run logs above")
    return elapsed


def main(repeats: int = 3) -> None:
    rows = []
    for job_fn in (in_process_job, multiprocess_job):
        times = [_time_run(job_fn) for _ in range(repeats)]
        rows.append((job_fn.__name__, statistics.median(times), min(times), max(times)))
    print(f"\n{'executor':<18} {'median s':>9} {'min s':>7} {'max s':>7}   ({repeats} runs each)")
    for name, median, low, high in rows:
        print(f"{name:<18} {median:>9.2f} {low:>7.2f} {high:>7.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
