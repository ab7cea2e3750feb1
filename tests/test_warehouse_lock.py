"""Another process holding the warehouse: the open waits with backoff, names the holder, and
gives up with a clear message after the bound; the read-only copy for queries is complete."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from core.settings import snapshot_of
from core.warehouse_lock import WarehouseLocked, open_warehouse, write_snapshot

#: A foreign read-only session: opens the file, says so, holds it for argv[2] seconds.
READER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("select count(*) from t").fetchall()
print("open", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_read_only(path: Path, seconds: float) -> subprocess.Popen:
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout.readline().strip() == "open"
    return reader


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select range as i from range(1000)")
    return path


def test_a_reader_held_for_a_while_is_waited_for_and_named(warehouse: Path):
    reader = hold_read_only(warehouse, 2)
    said: list[str] = []
    started = time.monotonic()
    try:
        con = open_warehouse(
            warehouse, wait_seconds=60, snapshot=snapshot_of(warehouse), log=said.append
        )
        con.execute("insert into t values (1000)")
        con.close()
    finally:
        reader.wait(10)
    assert time.monotonic() - started >= 1.5, "the open must have waited for the reader"
    assert said and all(f"process {reader.pid} (" in line for line in said)
    assert str(warehouse) in said[0] and "retry in 0.5s" in said[0]
    assert "retry in 1.0s" in said[1], "the wait backs off"


def test_a_reader_that_never_closes_fails_the_open_with_a_clear_message(warehouse: Path):
    reader = hold_read_only(warehouse, 120)
    try:
        with pytest.raises(WarehouseLocked) as failed:
            open_warehouse(warehouse, wait_seconds=1.5, snapshot=snapshot_of(warehouse), log=print)
    finally:
        reader.kill()
        reader.wait()
    message = str(failed.value)
    assert f"held by process {reader.pid} (" in message and READER.strip()[:20] in message
    assert "waited 2 s" in message or "waited 1 s" in message
    assert str(snapshot_of(warehouse)) in message and "oversight.duckdb" in message
    assert failed.value.holder.pid == reader.pid


def test_other_errors_are_not_waited_on(tmp_path: Path):
    not_duckdb = tmp_path / "notes.duckdb"
    not_duckdb.write_text("not a database")
    started = time.monotonic()
    with pytest.raises(duckdb.Error):
        open_warehouse(not_duckdb, wait_seconds=30, snapshot=snapshot_of(not_duckdb))
    assert time.monotonic() - started < 5


def test_the_snapshot_is_a_complete_read_only_copy_readable_while_the_warehouse_is_written(
    warehouse: Path,
):
    snapshot = snapshot_of(warehouse)
    assert snapshot.name == "warehouse.snapshot.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("insert into t select 1000 + range from range(500)")  # in the WAL until now
        write_snapshot(con, warehouse, snapshot)
        con.execute("insert into t values (-1)")  # the writer goes on; the copy does not change
        with duckdb.connect(str(snapshot), read_only=True) as reader:
            assert reader.execute("select count(*), min(i) from t").fetchall() == [(1500, 0)]
    assert not stat.S_IMODE(snapshot.stat().st_mode) & (stat.S_IWUSR | stat.S_IWGRP)
    assert [p.name for p in warehouse.parent.iterdir() if p.name.endswith(".tmp")] == []
    if os.geteuid() != 0:  # root may write anything; everyone else is refused
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(snapshot))


def test_every_step_that_opens_the_warehouse_is_in_the_writer_pool():
    """Assets and stand-alone asset checks alike: a read-only open also takes DuckDB's file lock."""
    from orchestration.definitions import defs
    from orchestration.lib.warehouse import WAREHOUSE_WRITER_POOL

    repo = defs().get_repository_def()
    steps = [*repo.asset_graph.assets_defs, *repo.asset_checks_defs_by_key.values()]
    openers = [s for s in steps if s.is_executable and s.required_resource_keys & {"warehouse"}]
    assert any(isinstance(s, dg.AssetChecksDefinition) for s in openers)
    outside = [s.node_def.name for s in openers if s.node_def.pool != WAREHOUSE_WRITER_POOL]
    assert not outside, f"open the warehouse outside the writer pool: {outside}"
