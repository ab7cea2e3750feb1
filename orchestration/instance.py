"""Dagster instance home: where run history, logs and schedules' state persist.

`DAGSTER_HOME` defaults to `.dagster_home/` in the project root (git-ignored); production sets it
to a persistent directory. The project's `dagster.yaml` (pool limits) is copied in when missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from core.settings import PROJECT_ROOT

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(INSTANCE_CONFIG, config)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


if __name__ == "__main__":
    print(ensure_dagster_home())
