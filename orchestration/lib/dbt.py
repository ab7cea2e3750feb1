"""The dbt project as Dagster sees it: project handle and translator.

`make` targets prepare the manifest ahead of time with
`dagster-dbt project prepare-and-package --file orchestration/lib/dbt.py`; under `dagster dev` it is
re-parsed on load so model edits show up without a rebuild.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from core.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()

#: The dbt CLI installed beside this interpreter, so a non-activated venv (`.venv/bin/dagster dev`)
#: still finds it.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))


class WarehouseNamingTranslator(DagsterDbtTranslator):
    """Asset key = [duckdb schema, table]; group = schema.

    The same convention as the Python assets (`raw/<table>`), so a dbt source
    `source('raw', 'sites')` resolves to the Dagster asset that loads `raw.sites`, and what a
    data engineer sees in the UI is what they query in DuckDB.
    """

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        table = dbt_resource_props.get("alias") or dbt_resource_props["name"]
        if dbt_resource_props["resource_type"] == "source":
            table = dbt_resource_props.get("identifier") or dbt_resource_props["name"]
        return dg.AssetKey([dbt_resource_props["schema"], table])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props["schema"]


@cache
def load_manifest() -> dict:
    """The prepared manifest, parsed once per process (the publish gate's rules and the
    rebuild fingerprint both read it)."""
    return json.loads(dbt_project.manifest_path.read_text())


translator = WarehouseNamingTranslator(
    settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)
)


#: dagster-dbt gives every dbt invocation its own target folder (~14 MB at demo scale: compiled
#: SQL, manifest, run results); the newest are kept for debugging, older ones removed.
RUN_TARGETS_KEPT = 5


def prune_run_targets(target_dir: Path, prefix: str, keep: int = RUN_TARGETS_KEPT) -> list[Path]:
    """Remove all but the `keep` newest `<prefix>-*` run folders under dbt's target folder."""
    import shutil

    folders = sorted(
        (p for p in target_dir.glob(f"{prefix}-*") if p.is_dir()), key=lambda p: p.stat().st_mtime
    )
    removed = folders[:-keep] if keep else folders
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed
