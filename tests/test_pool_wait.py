"""A run waiting for the writer pool's slot sleeps until its next claim check
(orchestration/lib/pool_wait.py): Dagster's own interval is never above 0, so the waiting run
spun a core, taking CPU from the run it waited for."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext

import orchestration.lib.run_health  # noqa: F401 - the executor's module applies the correction
from orchestration.lib.warehouse import WAREHOUSE_WRITER_POOL
from tests.conftest import project_instance


def test_a_run_waiting_for_the_writer_slot_sleeps_until_its_next_claim_check(tmp_path: Path):
    with project_instance(tmp_path / "home") as instance:
        holder, waiter = (dg.DagsterRun(job_name="oversight_refresh", run_id=r)
                          for r in ("holder-run", "waiter-run"))  # fmt: skip
        with InstanceConcurrencyContext(instance, holder) as holding:
            assert holding.claim(WAREHOUSE_WRITER_POOL, "warehouse_models")
            with InstanceConcurrencyContext(instance, waiter) as waiting:
                assert not waiting.claim(WAREHOUSE_WRITER_POOL, "smo_deliveries")
                interval = waiting.interval_to_next_pending_claim_check()
                # Dagster's backoff starts at 1 s: the run sleeps about that long, not 0 s
                assert 0.5 < interval <= 1.0
                started = time.monotonic()
                assert not waiting.claim(WAREHOUSE_WRITER_POOL, "smo_deliveries")
                assert time.monotonic() - started < 0.1, "a retry before its time reads no slot"
            instance.event_log_storage.free_concurrency_slots_for_run("holder-run")


def test_with_no_claim_pending_there_is_nothing_to_wait_for(tmp_path: Path):
    with project_instance(tmp_path / "home") as instance:
        run = dg.DagsterRun(job_name="oversight_refresh", run_id="only-run")
        with InstanceConcurrencyContext(instance, run) as context:
            assert context.interval_to_next_pending_claim_check() == 0.0
            assert context.claim(WAREHOUSE_WRITER_POOL, "smo_deliveries")
            assert context.interval_to_next_pending_claim_check() == 0.0
