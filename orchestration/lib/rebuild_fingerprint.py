"""Skip the warehouse rebuild when nothing it reads has changed.

A weekly refresh with no new deliveries would otherwise rebuild every model, rerun every test
and re-gate every mart to arrive at the same bytes. The fingerprint covers everything a build
reads: the delivery ledger (accepted and rejected files), the registry's stored record versions,
the dbt project as parsed (models, tests, seeds, macros, configs, vars), the environment
variables the project reads, and the Python the build and the publish run (core/, forecasting/,
expectations/, publishing/, orchestration/). A build is recorded in ops.dbt_builds only when it was complete and
every test passed, so a failed build is always retried.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
from functools import cache

import duckdb

from core.catalog import table_exists
from core.settings import DBT_PROJECT_DIR, PROJECT_ROOT

BUILDS_DDL = """
create table if not exists ops.dbt_builds (
    fingerprint  varchar not null,
    run_id       varchar,
    built_at     timestamp not null default current_timestamp
)
"""
#: Python the marts and their publication depend on beyond the dbt files themselves.
CODE_DIRS = ("core", "forecasting", "expectations", "publishing", "orchestration")


def _data_state(con: duckdb.DuckDBPyConnection) -> list:
    state = []
    if table_exists(con, "ops", "deliveries"):
        state += con.execute(
            "select count(*), max(delivery_id), max(processed_at)::varchar from ops.deliveries"
        ).fetchall()[0]
    # raw tables are written only by the delivery gate, but a row count per table also catches
    # rows removed or added behind the pipeline's back (cheap: no column is read)
    raw = [
        t
        for (t,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'raw' order by 1"
        ).fetchall()
    ]
    state += [con.execute(f'select count(*) from raw."{t}"').fetchall()[0][0] for t in raw]
    if table_exists(con, "registry", "raw_studies"):
        state += con.execute(
            "select count(*), sum(hash(nct_id, record_hash, role))::varchar "
            "from registry.raw_studies"
        ).fetchall()[0]
    return state


def _checksum(node: dict) -> str | None:
    value = node.get("checksum")  # {"name": "sha256", "checksum": ...}; unit tests: a string
    return value.get("checksum") if isinstance(value, dict) else value


def _project_state(manifest: dict) -> list:
    nodes = sorted(
        (uid, _checksum(n), json.dumps(n.get("config"), sort_keys=True, default=str))
        for uid, n in {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}.items()
    )
    macros = sorted(
        (uid, m.get("macro_sql", ""))
        for uid, m in manifest.get("macros", {}).items()
        if m.get("package_name") == manifest.get("metadata", {}).get("project_name")
    )
    return [nodes, macros]


#: Env vars the project reads that say where to write or how much memory to use, not what to
#: compute.
NOT_INPUTS = {"SMO_WAREHOUSE_PATH", "SMO_DBT_MEMORY_LIMIT"}


#: Where the dbt project can read env vars (not target/, which holds a folder per run).
PROJECT_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "macros", "seeds", "tests")


@cache
def _env_names() -> frozenset[str]:
    """Every env var the dbt project reads (`env_var('NAME'...)`), but NOT_INPUTS."""
    names = set()
    for source in PROJECT_SOURCES:
        root = DBT_PROJECT_DIR / source
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.suffix in (".yml", ".sql", ".py"):
                names |= set(re.findall(r"env_var\(\s*['\"]([A-Z0-9_]+)['\"]", path.read_text()))
    return frozenset(names - NOT_INPUTS)


def _env_state() -> dict:
    return {name: os.environ.get(name) for name in sorted(_env_names())}


def _code_state() -> list:
    files = sorted(p for d in CODE_DIRS for p in (PROJECT_ROOT / d).rglob("*.py"))
    return [(str(p.relative_to(PROJECT_ROOT)), hashlib.sha256(p.read_bytes()).hexdigest())
            for p in files]  # fmt: skip


def fingerprint(con: duckdb.DuckDBPyConnection, manifest: dict) -> str:
    state = [_data_state(con), _project_state(manifest), _env_state(), _code_state()]
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()


def last_build(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """(fingerprint, run id) of the last complete, fully passing build, if the marts exist."""
    if not table_exists(con, "ops", "dbt_builds") or not table_exists(
        con, "marts", "deliveries_used"
    ):
        return None
    rows = con.execute(
        "select fingerprint, run_id from ops.dbt_builds order by built_at desc limit 1"
    ).fetchall()
    return rows[0] if rows else None


def record_build(con: duckdb.DuckDBPyConnection, value: str, run_id: str) -> None:
    con.execute(BUILDS_DDL)
    # UTC like the ledger's processed_at, so "delivered since the last passing build" compares
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        "insert into ops.dbt_builds (fingerprint, run_id, built_at) values (?, ?, ?)",
        [value, run_id, now],
    )


def last_passing_build_at(con: duckdb.DuckDBPyConnection) -> dt.datetime | None:
    """When the last complete, fully passing build finished (UTC), if any."""
    if not table_exists(con, "ops", "dbt_builds"):
        return None
    return con.execute("select max(built_at) from ops.dbt_builds").fetchall()[0][0]
