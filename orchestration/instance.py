"""Dagster instance home: where run history, logs and schedules' state persist.

`DAGSTER_HOME` defaults to `.dagster_home/` in the project root (git-ignored); production sets it
to a persistent directory. The project's `dagster.yaml` (pool limits, event log) is written in
when missing, with that home's event log folder filled in (`instance_config`).
`open_instance` creates the instance's storage under a file lock: two runs launched together on a
fresh home (two `make demo`) would otherwise both create the SQLite tables and one would fail
(`table secondary_indexes already exists`).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from core.settings import PROJECT_ROOT

INSTANCE_CONFIG = Path(__file__).with_name("dagster.yaml")


def instance_config(home: Path) -> dict:
    """The project's `dagster.yaml` for the instance in `home`, its event log folder
    (`history/runs/`, where Dagster keeps it) written out: Dagster gives a custom event log
    storage only its own config, so without it the storage falls back to `$DAGSTER_HOME`'s, and
    a home opened by path (`InstanceRef.from_dir`) under another DAGSTER_HOME would read and
    write that one's events."""
    config = yaml.safe_load(INSTANCE_CONFIG.read_text())
    config["event_log_storage"]["config"] = {"base_dir": str(home / "history" / "runs")}
    return config


def ensure_dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        source = INSTANCE_CONFIG.relative_to(PROJECT_ROOT)
        header = f"# Written from {source} (its comments say why) for this home.\n"
        config.write_text(header + yaml.safe_dump(instance_config(home), sort_keys=False))
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
