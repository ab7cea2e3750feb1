"""Every dbt unit test passes (the formulas pinned on hand-computed inputs in the models' YAML).

A refresh's `dbt build` leaves unit tests out (`BUILD_EXCLUDES`: their outcome cannot change
with a delivery), so they run here, in `make test`: every model is built empty (`--empty`) into a
temporary warehouse holding the pipeline's own empty source tables, and every unit test runs
against it. No data test runs: the refresh tests cover those on real data.

It also shows that dbt's saved parse state (`make setup`) holds for a warehouse at another path
(`smo-dbt`, orchestration/lib/dbt_cli.py): the build re-parses nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb

from ingest.registry.store import ensure_schema as ensure_registry_schema
from ingest.registry.store import rebuild_flat_tables
from ingest.warehouse import ensure_schema as ensure_warehouse_schema
from orchestration.lib.dbt import (
    BUILD_EXCLUDES,
    DBT_EXECUTABLE,
    DBT_PROJECT_DIR,
    dbt_project,
    load_manifest,
)


def test_every_dbt_unit_test_passes(tmp_path: Path):
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:  # the sources, as the Dagster assets create them
        ensure_warehouse_schema(con)
        ensure_registry_schema(con)
        rebuild_flat_tables(con)  # empty: no record fetched
    target = tmp_path / "target"
    target.mkdir()  # with the saved parse state, as dagster-dbt gives every build
    saved = dbt_project.project_dir / dbt_project.target_path / "partial_parse.msgpack"
    shutil.copy(saved, target / "partial_parse.msgpack")
    done = subprocess.run(
        [DBT_EXECUTABLE, "build", "--empty", "--exclude-resource-type", "test",
         "--target-path", str(target), "--log-path", str(tmp_path / "logs"),
         "--log-format-file", "json"],
        cwd=DBT_PROJECT_DIR, env={**os.environ, "SMO_WAREHOUSE_PATH": str(warehouse)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    results = json.loads((target / "run_results.json").read_text())["results"]
    ran = {r["unique_id"]: r for r in results if r["unique_id"].startswith("unit_test.")}
    failed = sorted(
        f"{uid.split('.')[-2]}.{uid.split('.')[-1]} [{r['status']}]: {(r.get('message') or '')[:300]}"
        for uid, r in ran.items()
        if r["status"] != "pass"
    )
    broken = [r["unique_id"] for r in results if r["status"] not in ("pass", "success")]
    assert not failed, "dbt unit tests failed:\n" + "\n".join(failed)
    assert not broken, f"models or seeds did not build empty: {broken}\n{done.stdout[-3000:]}"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # every unit test of the project ran: none is left to the refresh, which runs none
    assert set(ran) == set(load_manifest()["unit_tests"]) and ran
    assert BUILD_EXCLUDES == ("--exclude-resource-type", "unit_test")
    events = [json.loads(line)["info"] for line in (tmp_path / "logs" / "dbt.log").open()]
    parse = [e["msg"] for e in events if "PartialPars" in e["name"] and "Enabled" in e["name"]]
    full = [e["msg"] for e in events if e["name"] == "UnableToPartialParse"]
    assert parse and not full, f"dbt re-parsed the project at a new warehouse path: {full}"
