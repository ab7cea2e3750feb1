"""Publish the marts for BI tools: one read-only DuckDB file plus Parquet, replaced atomically.

BI tools never open the warehouse (DuckDB has one writer or many readers). A publish writes a new
file next to the current one, with STORAGE_VERSION v1.5.0 so drivers that bundle DuckDB 1.5 can
open it, detaches it (which checkpoints it), fsyncs it and renames it over `oversight.duckdb`.
A rename is atomic on POSIX filesystems: a reader sees the previous file or the next one, never
a mix, and a reader that already has the old file open keeps reading it. A publish killed at any
point leaves the previous file in place; its leftovers (dot-files ending .tmp) are removed by the
next publish. `history/` keeps hard links to the last N published files. Parquet: one file per
mart in `parquet/<mart>/<mart>.parquet`, each replaced atomically (the set of files is consistent
only per file; the DuckDB file is the consistent snapshot). Rows are written in a fixed order
(sorted on all columns), so a mart rebuilt from the same deliveries gives the same Parquet bytes.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from core.crash_points import crash_point

PUBLISHED_NAME = "oversight.duckdb"
STORAGE_VERSION = "v1.5.0"
META_TABLE = "meta"
#: The meta table: what a BI reader needs to know about the publish it is looking at.
META_COLUMNS = {
    "publish_id": "varchar",
    "published_at": "timestamp",
    "dagster_run_id": "varchar",
    "as_of_date": "date",
    "code_version": "varchar",
    "kri_definitions_version": "varchar",
    "deliveries_included": "integer",
    "delivery_ids": "varchar",
    "registry_data_timestamp": "varchar",
    "registry_stale": "boolean",
    "registry_stale_reason": "varchar",
}


@dataclass(frozen=True)
class PublishResult:
    publish_id: str
    path: Path
    tables: dict[str, int]
    parquet_dir: Path
    history: list[Path]
    seconds: float


def published_path(publish_dir: Path) -> Path:
    return publish_dir / PUBLISHED_NAME


def new_publish_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def code_version(project_root: Path) -> str:
    """The git commit the code runs from, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(project_root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(project_root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def read_published(publish_dir: Path, table: str) -> pd.DataFrame | None:
    """The latest as-of week of a table of the current publish (all of it when it has no
    as_of_date); None before the first publish or if the publish lacks the table."""
    path = published_path(publish_dir)
    if not path.exists():
        return None
    with duckdb.connect(str(path), read_only=True) as con:
        columns = {
            c for (c,) in con.execute(
                "select column_name from duckdb_columns() where table_name = ?", [table]
            ).fetchall()
        }  # fmt: skip
        if not columns:
            return None
        latest = (
            f' where as_of_date = (select max(as_of_date) from "{table}")'
            if "as_of_date" in columns
            else ""
        )
        return con.execute(f'select * from "{table}"{latest}').df()


def _published_meta(publish_dir: Path, column: str) -> str | None:
    path = published_path(publish_dir)
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            rows = con.execute(f"select {column} from {META_TABLE}").fetchall()
    except duckdb.Error:
        return None
    return rows[0][0] if rows else None


def published_run_id(publish_dir: Path) -> str | None:
    """The Dagster run that wrote the current publish (meta.dagster_run_id); None before the
    first publish or when the file cannot be read."""
    return _published_meta(publish_dir, "dagster_run_id")


def published_publish_id(publish_dir: Path) -> str | None:
    """The current publish's id (meta.publish_id); None before the first publish."""
    return _published_meta(publish_dir, "publish_id")


def remove_leftovers(publish_dir: Path) -> list[Path]:
    """Temporary files of publishes that did not finish (killed, crashed)."""
    removed = []
    for path in [*publish_dir.glob(".*.tmp"), *publish_dir.glob(".*.tmp.wal")]:
        path.unlink(missing_ok=True)
        removed.append(path)
    parquet = publish_dir / "parquet"
    if parquet.exists():
        for path in parquet.glob("*/.*.tmp"):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_table(con: duckdb.DuckDBPyConnection, source: str, table: str) -> None:
    """Rows sorted on every column, so the same mart always gives the same file bytes (a
    query's row order depends on how DuckDB's threads split it)."""
    con.execute(f'create table bi_new.main."{table}" as from {source} order by all')


def publish(
    con: duckdb.DuckDBPyConnection,
    publish_dir: Path,
    *,
    tables: dict[str, str],
    meta: dict,
    keep: int,
    publish_id: str | None = None,
) -> PublishResult:
    """Write `tables` (name -> source relation in the warehouse) and a meta row, then swap.

    `con` is the warehouse connection; the caller holds the writer, so the marts cannot change
    while they are copied.
    """
    started = time.perf_counter()
    publish_id = publish_id or new_publish_id()
    publish_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(publish_dir)
    final = published_path(publish_dir)
    temp = publish_dir / f".oversight-{publish_id}.duckdb.tmp"

    con.execute(f"attach '{temp}' as bi_new (storage_version '{STORAGE_VERSION}')")
    try:
        for table, source in tables.items():
            _copy_table(con, source, table)
        columns = ", ".join(f"{name} {sql_type}" for name, sql_type in META_COLUMNS.items())
        con.execute(f"create table bi_new.main.{META_TABLE} ({columns})")
        row = {**meta, "publish_id": publish_id}
        con.execute(
            f"insert into bi_new.main.{META_TABLE} values ({', '.join('?' * len(META_COLUMNS))})",
            [row.get(name) for name in META_COLUMNS],
        )
        counts = {
            table: con.execute(f'select count(*) from bi_new.main."{table}"').fetchall()[0][0]
            for table in [*tables, META_TABLE]
        }
    finally:
        con.execute("detach bi_new")  # checkpoints the new file
    _fsync(temp)

    parquet_dir = publish_dir / "parquet"
    staged = []
    con.execute(f"attach '{temp}' as bi_new (read_only)")
    try:
        for table in [*tables, META_TABLE]:
            folder = parquet_dir / table
            folder.mkdir(parents=True, exist_ok=True)
            part = folder / f".{table}.parquet.{publish_id}.tmp"
            con.execute(f"copy (from bi_new.main.\"{table}\") to '{part}' (format parquet)")
            staged.append((part, folder / f"{table}.parquet"))
    finally:
        con.execute("detach bi_new")

    crash_point("publish_swap")
    os.replace(temp, final)  # the moment readers switch
    _fsync(publish_dir)
    for part, target in staged:
        os.replace(part, target)

    history = publish_dir / "history"
    history.mkdir(exist_ok=True)
    kept = history / f"oversight-{publish_id}.duckdb"
    try:
        os.link(final, kept)
    except OSError:  # filesystems without hard links
        import shutil

        shutil.copy2(final, kept)
    published = sorted(history.glob("oversight-*.duckdb"))
    for old in published[:-keep]:
        old.unlink(missing_ok=True)
    return PublishResult(
        publish_id=publish_id,
        path=final,
        tables=counts,
        parquet_dir=parquet_dir,
        history=sorted(history.glob("oversight-*.duckdb")),
        seconds=time.perf_counter() - started,
    )
