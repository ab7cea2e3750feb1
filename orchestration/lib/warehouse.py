"""The DuckDB warehouse as Dagster sees it: the resource every writing asset uses and the pool
that serialises them.

Every open goes through `DuckDBWarehouse.connect`, which waits (bounded, with backoff) for a
foreign process holding the file (core/warehouse_lock.py) and turns a wait that ran out into a
`dg.Failure` naming the holder, so the step's message is a sentence, not DuckDB's traceback.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from core.settings import load_settings, snapshot_of
from core.warehouse_lock import WarehouseLocked, open_warehouse, wait_for_unlock, write_snapshot

#: Dagster concurrency pool that every asset writing the DuckDB warehouse joins. DuckDB allows a
#: single writer process, so the pool's limit is 1 (see orchestration/dagster.yaml).
WAREHOUSE_WRITER_POOL = "duckdb_writer"
#: The pool slot the end-of-run snapshot claims, as if it were a step of the run.
SNAPSHOT_STEP = "warehouse_snapshot"


class DuckDBWarehouse(dg.ConfigurableResource):
    """The DuckDB file the pipeline writes. Only assets in the writer pool open it for writing.

    BI tools never open this file: they read the separately published copy.
    """

    path: str = Field(
        default="",
        description="DuckDB file; empty means SMO_WAREHOUSE_PATH, read when the run starts.",
    )

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).resolve() if self.path else load_settings().warehouse_path

    @contextmanager
    def connect(
        self, read_only: bool = False, log: Callable[[str], None] | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            self.resolved_path.parent.mkdir(parents=True, exist_ok=True)
        settings = load_settings()
        with locked_as_failure():
            con = open_warehouse(
                self.resolved_path,
                read_only=read_only,
                wait_seconds=settings.warehouse_lock_wait_seconds,
                snapshot=self.snapshot_path,
                log=log or step_log(),
            )
        try:
            yield con
        finally:
            con.close()

    @property
    def snapshot_path(self) -> Path:
        return snapshot_of(self.resolved_path)

    def wait_until_free(self, reason: str, wait_seconds: float | None = None) -> None:
        """Open and close the file for writing, waiting like `connect`: before a subprocess
        (dbt) that opens it itself and would fail at once on a foreign lock."""
        if wait_seconds is None:
            wait_seconds = load_settings().warehouse_lock_wait_seconds
        log = step_log()
        with locked_as_failure():
            wait_for_unlock(
                lambda: duckdb.connect(str(self.resolved_path)).close(),
                self.resolved_path,
                wait_seconds,
                lambda line: log(f"{reason}: {line}"),
                self.snapshot_path,
            )

    @contextmanager
    def exported_to_dbt(self) -> Iterator[None]:
        """Make dbt (a subprocess reading `SMO_WAREHOUSE_PATH` in profiles.yml) write this file.

        The resource is the one source of truth for the path at run time; the environment is
        restored afterwards so one process can run against several warehouses (tests do).
        """
        previous = os.environ.get("SMO_WAREHOUSE_PATH")
        os.environ["SMO_WAREHOUSE_PATH"] = str(self.resolved_path)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("SMO_WAREHOUSE_PATH", None)
            else:
                os.environ["SMO_WAREHOUSE_PATH"] = previous


def step_log() -> Callable[[str], None]:
    """The running step's warning log (the run's log in the UI), else Dagster's Python logger."""
    for kind in (dg.AssetExecutionContext, dg.AssetCheckExecutionContext):
        try:
            return kind.get().log.warning
        except dg.DagsterInvariantViolationError:
            continue
    return dg.get_dagster_logger().warning


@contextmanager
def locked_as_failure() -> Iterator[None]:
    """A wait for the warehouse that ran out fails the step with the holder in its message."""
    try:
        yield
    except WarehouseLocked as exc:
        raise dg.Failure(
            description=str(exc),
            metadata={
                "warehouse": dg.MetadataValue.path(str(exc.path)),
                "holder_pid": exc.holder.pid if exc.holder.pid is not None else "unknown",
                "holder": exc.holder.command or exc.holder.program,
                "waited_seconds": round(exc.waited, 1),
            },
            allow_retries=False,
        ) from None


def refresh_snapshot(plan_context) -> None:
    """After every run, in the writer pool like a step: the read-only copy engineers query.

    Called by the run's executor once every step is done (succeeded or not), so the copy shows
    what the run left, ops.gate_results of a failed gate included. A copy that cannot be made
    (the warehouse held by a foreign process beyond the bound, a full disk) is a warning: the
    run's work is done and the previous copy stays, as the log says.
    """
    from dagster._core.execution.plan.instance_concurrency_context import (
        InstanceConcurrencyContext,
    )

    warehouse = DuckDBWarehouse()
    if not warehouse.resolved_path.exists():
        return
    log = plan_context.log
    with InstanceConcurrencyContext(plan_context.instance, plan_context.dagster_run) as slots:
        while not slots.claim(WAREHOUSE_WRITER_POOL, SNAPSHOT_STEP):
            time.sleep(0.5)
        try:
            started = time.perf_counter()
            with warehouse.connect(log=log.warning) as con:
                size = write_snapshot(con, warehouse.resolved_path, warehouse.snapshot_path)
            log.info(
                f"Read-only copy for queries: {warehouse.snapshot_path} ({size / 1e6:.1f} MB "
                f"in {time.perf_counter() - started:.2f} s)"
            )
        except (dg.Failure, duckdb.Error, OSError) as exc:
            why = exc.description if isinstance(exc, dg.Failure) else f"{type(exc).__name__}: {exc}"
            log.warning(
                f"The read-only copy {warehouse.snapshot_path} was not refreshed and is older "
                f"than this run: {why}"
            )
        finally:
            slots.free_step(SNAPSHOT_STEP)
