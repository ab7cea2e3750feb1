"""Dagster instance home: where run history, logs and schedules' state persist.

`DAGSTER_HOME` defaults to `.dagster_home/` in the project root (git-ignored); production sets it
to a persistent directory. The project's `dagster.yaml` (pool limits) is copied in when missing.
`open_instance` creates the instance's storage under a file lock: two runs launched together on a
fresh home (two `make demo`) would otherwise both create the SQLite tables and one would fail
(`table secondary_indexes already exists`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def open_instance() -> Iterator:
    """`DagsterInstance.get()` on the home above, its storage created by one process at a time."""
    import dagster as dg

    home = ensure_dagster_home()
    with open(home / ".storage-init.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        try:
            instance.get_runs(limit=1)  # run, event log and schedule storage: tables exist now
            instance.event_log_storage.get_concurrency_keys()
            instance.all_instigator_state()
        except BaseException:
            instance.dispose()
            raise
    with instance:
        yield instance


if __name__ == "__main__":
    print(ensure_dagster_home())
