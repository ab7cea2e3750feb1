"""Dead runs release what they hold: a run whose process died (kill -9, out of memory, a
machine restart) keeps its `duckdb_writer` slot and stays STARTED, so every later run waits for
the slot forever and the failure alert never fires.

Every run records where its steps execute (run tags `smo/worker_host`, `smo/worker_pid`) as its
executor starts, and first looks at the runs that are STARTED or hold or wait for a concurrency
slot: a run on this host whose process no longer exists is marked FAILURE (the failure alert fires) and its
slots are freed; a finished run still holding slots has them freed. Runs on another host, or
without the tags, are left to Dagster's run monitoring (orchestration/dagster.yaml).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from orchestration.lib import pool_wait  # noqa: F401 - a run waiting for a pool slot sleeps
from orchestration.lib.warehouse import refresh_snapshot

HOST_TAG = "smo/worker_host"
PID_TAG = "smo/worker_pid"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists and is not a zombie (Linux /proc when present)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def record_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    instance.add_run_tags(run_id, {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())})


def release_dead_runs(instance: dg.DagsterInstance, current_run_id: str | None) -> Iterator[str]:
    """Free the slots of runs that are no longer alive; yield one line per run released."""
    storage = instance.event_log_storage
    holding = (
        storage.get_concurrency_run_ids() if storage.supports_global_concurrency_limits else set()
    )
    started = {
        run.run_id
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    }
    host = socket.gethostname()
    for run_id in sorted((holding | started) - {current_run_id}):
        run = instance.get_run_by_id(run_id)
        if run is None:
            storage.free_concurrency_slots_for_run(run_id)
            yield f"Freed the concurrency slots of run {run_id}, which no longer exists."
            continue
        if run.status in FINISHED:
            storage.free_concurrency_slots_for_run(run_id)
            yield f"Freed the concurrency slots still held by run {run_id} ({run.status.value})."
            continue
        pid = run.tags.get(PID_TAG)
        if run.tags.get(HOST_TAG) != host or not pid or not pid.isdigit():
            continue
        if process_alive(int(pid)):
            continue
        instance.report_run_failed(
            run,
            message=f"Run worker process {pid} on {host} is gone (killed or crashed) while the run "
            f"was {run.status.value}; marked failed by run {current_run_id} at its start.",
        )
        storage.free_concurrency_slots_for_run(run_id)
        yield (
            f"Run {run_id} ({run.job_name}) was {run.status.value} but its process {pid} on "
            f"{host} is gone: marked FAILURE and its slots freed."
        )


class ReleasingExecutor(dg.Executor):
    """The in-process executor, preceded by `record_worker` and `release_dead_runs`, followed
    by the warehouse's read-only copy for queries (`refresh_snapshot`)."""

    def __init__(self, inner: dg.Executor):
        self._inner = inner

    @property
    def retries(self):
        return self._inner.retries

    @property
    def step_dependency_config(self):
        return self._inner.step_dependency_config

    def execute(self, plan_context, execution_plan):
        instance, run_id = plan_context.instance, plan_context.run_id
        record_worker(instance, run_id)
        for line in release_dead_runs(instance, run_id):
            plan_context.log.warning(line)
        yield from self._inner.execute(plan_context, execution_plan)
        refresh_snapshot(plan_context)


@dg.executor(
    name="in_process",
    config_schema=dg.in_process_executor.config_schema.as_field(),
)
def in_process_releasing_dead_runs(init_context) -> dg.Executor:
    """Every step in the run's own process; before the first step, runs whose process died are
    marked failed and their concurrency slots freed; after the last, the warehouse's read-only
    copy is refreshed."""
    return ReleasingExecutor(dg.in_process_executor.executor_creation_fn(init_context))
