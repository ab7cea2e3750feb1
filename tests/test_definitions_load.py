"""Loading the code location imports only what the load needs (issue 22).

The UI, the sensors and every run load the definitions first; the delivery gate's pandera, the
publish gate's great-expectations and the XLSX readers are imported by the step that uses
them. A fresh interpreter loads the definitions and reports `sys.modules`, so an import added
at the top of a module on the load's path fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

from core.settings import PROJECT_ROOT

#: Imported by the code that needs them, never by the definitions load.
LAZY = (
    "pandera",
    "polars",
    "great_expectations",
    "fastexcel",
    "openpyxl",
    "xlsxwriter",
    "hypothesis",
)

REPORT = """
import json, sys
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""
LOAD = """
from orchestration.definitions import defs
repo = defs().get_repository_def()
assert repo.get_job("oversight_refresh")
"""


def loaded_top_level_modules(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_definitions_load_does_not_import_what_only_steps_need():
    loaded = loaded_top_level_modules(LOAD + REPORT)
    assert "dagster" in loaded and "orchestration" in loaded  # the load really ran
    assert not loaded & set(LAZY), f"definitions load imports {sorted(loaded & set(LAZY))}"


def test_the_probe_sees_a_heavy_import():
    """Negative control: the same probe reports pandera once the delivery gate is imported."""
    loaded = loaded_top_level_modules("import ingest.gate\n" + REPORT)
    assert "pandera" in loaded
