"""The instance's event log keeps its connections open and loses nothing a killed process wrote
(orchestration/lib/event_log.py)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from core.settings import PROJECT_ROOT
from orchestration.instance import INSTANCE_CONFIG, ensure_dagster_home
from orchestration.lib.event_log import OPEN_RUN_DATABASES, KeptOpenSqliteEventLogStorage

WRITE_THEN_DIE = """
import os, signal, sys
import dagster as dg
instance = dg.DagsterInstance.get()
for i in range(int(sys.argv[1])):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="visits", metadata={"i": i}))
os.kill(os.getpid(), signal.SIGKILL)  # no dispose, no close: the connections die open
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Dagster home as `make` writes it (orchestration/instance.py)."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    return ensure_dagster_home()


def test_the_project_instance_uses_the_kept_open_event_log_in_dagsters_own_folder(home: Path):
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, KeptOpenSqliteEventLogStorage)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="sites"))
    assert (home / "history" / "runs" / "index.db").is_file()  # where Dagster keeps it by default


def test_a_home_opened_by_path_keeps_its_own_event_log_whatever_dagster_home_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Dagster gives a custom event log storage only its own config: the home's dagster.yaml
    names its folder, or an instance opened by path would use DAGSTER_HOME's."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    home = ensure_dagster_home()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "other"))
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="staffing"))
    assert (home / "history" / "runs" / "index.db").is_file()
    assert not (tmp_path / "other").exists()
    monkeypatch.delenv("DAGSTER_HOME")
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        assert instance.fetch_materializations(dg.AssetKey("staffing"), limit=5).records


def test_the_template_without_a_home_names_what_is_missing(tmp_path: Path, monkeypatch):
    shutil.copyfile(INSTANCE_CONFIG, tmp_path / "dagster.yaml")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(Exception, match="needs DAGSTER_HOME"):
        dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))


def test_events_of_a_killed_writer_are_all_read_by_the_next_process(home: Path):
    written = 40
    done = subprocess.run(
        [sys.executable, "-c", WRITE_THEN_DIE, str(written)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("visits"), limit=1000).records
    assert sorted(r.asset_materialization.metadata["i"].value for r in records) == list(
        range(written)
    )


def test_a_second_instance_reads_what_the_first_wrote_while_it_stays_open(home: Path):
    with dg.DagsterInstance.get() as writer, dg.DagsterInstance.get() as reader:
        for i in range(3):
            writer.report_runless_asset_event(dg.AssetMaterialization(asset_key="payments"))
            assert len(
                reader.fetch_materializations(dg.AssetKey("payments"), limit=10).records
            ) == (i + 1)


def test_only_a_few_run_databases_stay_open(home: Path):
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        for n in range(OPEN_RUN_DATABASES + 3):
            with storage.run_connection(f"run-{n}"):
                pass
        open_runs = [shard for shard in storage._engines if shard != "index"]
        assert open_runs == [f"run-{n}" for n in range(3, OPEN_RUN_DATABASES + 3)]
        storage.wipe()  # deletes the run files: their connections are closed first
        assert list(storage._engines) == ["index"]


def test_a_table_is_looked_up_until_found_then_remembered(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    """Dagster asks whether the index has a table before every asset check event; the answer is
    kept once the table is there, never while it is missing."""
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        index = Path(storage.path_for_shard("index"))
        assert not storage.has_table("added_later")
        with sqlite3.connect(index) as con:
            con.execute("create table added_later (x integer)")
        assert storage.has_table("added_later")

        looked_up = []
        dagsters = SqliteEventLogStorage.has_table

        def counted(self, table_name: str) -> bool:
            looked_up.append(table_name)
            return dagsters(self, table_name)

        with monkeypatch.context() as patch:
            patch.setattr(SqliteEventLogStorage, "has_table", counted)
            assert storage.has_table("added_later")
            assert not storage.has_table("never_added")
            assert not storage.has_table("never_added")
        assert looked_up == ["never_added", "never_added"]
