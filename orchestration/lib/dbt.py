"""The dbt project as Dagster sees it: project handle and translator.

`make` targets prepare the manifest ahead of time with
`dagster-dbt project prepare-and-package --file orchestration/lib/dbt.py`; under `dagster dev` it is
re-parsed on load so model edits show up without a rebuild.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtProjectPreparer,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
)
from dagster_shared.record import replace
from packaging import version

from core.settings import DBT_PROJECT_DIR

#: The dbt CLI installed beside this interpreter, so a non-activated venv (`.venv/bin/dagster dev`)
#: still finds it: `smo-dbt` (orchestration/lib/dbt_cli.py), dbt's command line whose saved parse
#: state holds for a warehouse at any path (tests and benchmarks skip a full parse per build).
DBT_EXECUTABLE = str(Path(sys.executable).with_name("smo-dbt"))

if shutil.which("dbt") is None:
    # dagster-dbt's dev-time parse (`prepare_if_dev` under `dagster dev`) runs the `dbt` found on
    # PATH and takes no executable; without an activated venv that is this interpreter's.
    os.environ["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]
    )

#: What a refresh's `dbt build` leaves out: unit tests pin formulas on fixed inputs, so their
#: outcome cannot change with a delivery. dbt's guidance is to run them in development and CI,
#: not in production builds; `make test` runs all of them (tests/test_dbt_unit_tests.py).
BUILD_EXCLUDES = ("--exclude-resource-type", "unit_test")

#: dbt's own log file (`dbt.log` in each invocation's target folder) at info level: node starts,
#: results and errors, without every SQL statement and connection event. Writing the debug level
#: cost 1.4-3.4 s of a 13-17 s demo-scale build (README, Performance); the compiled SQL of each node
#: stays in the same folder.
DBT_GLOBAL_FLAGS = ["--log-level-file", "info"]


class InPlacePreparer(DagsterDbtProjectPreparer):
    """Parses the project and keeps dbt's saved parse state whole.

    dagster-dbt's preparer marks every seed as changed in `partial_parse.msgpack`, for projects
    parsed in one place and run in another (a seed's stored root path would be wrong there).
    This project is parsed where it runs (`make setup`, `dagster dev`), and the marking made
    every `dbt build` re-parse the seeds and the models reading them (1.5-5 s a build). It parses
    with `smo-dbt`, as the builds run (`DBT_EXECUTABLE`)."""

    def _invalidate_seeds_in_partial_parse(self, project: DbtProject) -> None:
        return None

    def _prepare_manifest(self, project: DbtProject) -> None:
        """`dbt parse` with the pipeline's own dbt (`DBT_EXECUTABLE`), so that the saved state
        is one its builds accept."""
        WarehouseDbtResource(project_dir=project, dbt_executable=DBT_EXECUTABLE).cli(
            self._prepare_project_cli_args, target_path=project.target_path
        ).wait()


class WarehouseDbtResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource without two costs it pays before every dbt command that
    this project has no use for: a `dbt --version` subprocess (a whole dbt start, 2-5 s) to learn
    the version of the dbt installed beside this interpreter, and an in-process dbt adapter
    (importing dbt, loading the profile: ~3 s) that serves only dagster-dbt's row-count and
    column-metadata fetches (the step counts rows itself once dbt has closed the warehouse)."""

    @property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:  # type: ignore[override]
        return None


# DbtProject takes no preparer argument: it is swapped in on the record.
dbt_project = replace(DbtProject(project_dir=DBT_PROJECT_DIR), preparer=InPlacePreparer())
dbt_project.prepare_if_dev()


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

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        """dagster-dbt only reads a test's `meta.description`; the UI shows the test's own
        `description:` instead, or one derived from the generic test, its column and arguments."""
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        return dg.AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=describe_test(manifest["nodes"][unique_id]),
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=spec.automation_condition,
        )


def _arg(value: Any) -> str:
    """`ref('x')` → x; lists joined; the way a reader names a relation or a value set."""
    if isinstance(value, list | tuple):
        return ", ".join(_arg(v) for v in value)
    text = str(value)
    for prefix in ("ref('", "source('"):
        if text.startswith(prefix) and text.endswith("')"):
            return text[len(prefix) : -2].replace("', '", ".")
    return text


def describe_test(node: Mapping[str, Any]) -> str:
    """What a dbt data test asserts, in one sentence: its `description:` when it has one, else
    derived from the generic test's name, column and arguments (dbt's own naming convention)."""
    if node.get("description"):
        return node["description"]
    model = (node.get("attached_node") or "").split(".")[-1] or "the model"
    test = node.get("test_metadata") or {}
    if not test:
        return (
            f"Singular dbt test {node['name']} on {model}: passes when its query returns no rows."
        )
    kwargs = {k: v for k, v in (test.get("kwargs") or {}).items() if k != "model"}
    column = kwargs.pop("column_name", None)
    subject = f"{model}.{column}" if column else model
    name = test["name"]
    if name == "not_null":
        text = f"{subject} is never NULL"
    elif name == "unique":
        text = f"{subject} has no duplicate values"
    elif name == "accepted_values":
        text = f"{subject} is one of: {_arg(kwargs.get('values', []))}"
    elif name == "relationships":
        text = f"every {subject} exists in {_arg(kwargs.get('to'))}.{kwargs.get('field')}"
    elif name == "unique_combination_of_columns":
        text = f"one row per ({_arg(kwargs.get('columns', []))}) in {model}"
    elif name == "non_negative":
        text = f"{subject} is never negative"
    else:
        args = ", ".join(f"{k}={_arg(v)}" for k, v in sorted(kwargs.items()))
        text = f"{name} on {subject}" + (f" ({args})" if args else "")
    severity = (node.get("config") or {}).get("severity", "error").lower()
    return f"{text[0].upper()}{text[1:]} (dbt test {name}, severity {severity})."


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
