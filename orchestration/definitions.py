"""The single Definitions entry point: everything under `orchestration/defs/` is loaded."""

import dagster as dg

from core.settings import PROJECT_ROOT


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(project_root=PROJECT_ROOT)
