"""Publish the marts for BI tools: one read-only DuckDB file plus Parquet, replaced atomically.

BI tools never open the warehouse (DuckDB has one writer or many readers). A publish writes a new
file next to the current one, with STORAGE_VERSION v1.5.0 so drivers that bundle DuckDB 1.5 can
open it, detaches it (which checkpoints it), fsyncs it and renames it over `oversight.duckdb`.
A rename is atomic on POSIX filesystems: a reader sees the previous file or the next one, never
a mix, and a reader that already has the old file open keeps reading it. A publish killed at any
point leaves the previous file in place; its leftovers (dot-files ending .tmp) are removed by the
next publish. `history/` keeps hard links to the last N published files.

Parquet is published as a set, because BI tools read several marts and must not mix publishes:
each publish writes every mart and `meta` to `parquet/sets/.<id>.tmp/`, fsyncs it and renames it
to `parquet/sets/<id>/` (a set folder without the dot is complete), then one atomic switch makes
it current: a temporary symlink renamed over `parquet/current` (-> `sets/<id>`). `parquet/CURRENT`
(the publish id, one line) follows for tools that cannot follow symlinks. A reader resolves
`current` once and reads every file from that folder. The Parquet switch comes before the DuckDB
rename, which stays the commit point recovery looks at (published_run_id): a publish killed in
between is published again by the next run. Sets are kept like the DuckDB history (never fewer
than two, so a reader that resolved the previous set can finish; never the one a pointer names).
Rows are written in a fixed order (sorted on all columns), so a mart rebuilt from the same
deliveries gives the same Parquet rows in the same order.

The file documents itself for BI tools, which show comments but never read dbt: every table and
column carries its dbt description as a DuckDB comment (COMMENT ON, written before the rename, so
a reader never sees an undocumented file), each Parquet file carries the same descriptions as
Arrow field metadata and the table's in its schema metadata, and a `readme` table says per table
what it is, its grain and how to count it correctly (dbt meta `grain`, `how_to_count`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.crash_points import crash_point

PUBLISHED_NAME = "oversight.duckdb"
PARQUET_DIR = "parquet"
#: parquet/current -> sets/<publish_id>: the one switch; CURRENT: the same id as a text file.
PARQUET_SETS, PARQUET_CURRENT, PARQUET_POINTER = "sets", "current", "CURRENT"
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


META_DESCRIPTIONS = {
    "publish_id": "This publish's id (UTC time it started); also in every Parquet file's metadata.",
    "published_at": "When the publish was written (UTC).",
    "dagster_run_id": "The Dagster run that published it.",
    "as_of_date": "The newest as-of week in the marts: marts with as_of_date hold every week.",
    "code_version": "The git commit the pipeline ran from (-dirty: with uncommitted changes).",
    "kri_definitions_version": "The KRI definition versions in force (seeds/kri_definitions.csv).",
    "deliveries_included": "How many SMO deliveries the latest week was computed from.",
    "delivery_ids": "Those deliveries' ids, a JSON list (ops.deliveries in the warehouse).",
    "registry_data_timestamp": "The ClinicalTrials.gov dataTimestamp of the registry data used.",
    "registry_stale": "True when the last registry fetch failed and older registry data is used.",
    "registry_stale_reason": "Why the registry data is stale; NULL when it is current.",
}
README_TABLE = "readme"
#: The readme table: one row per published table (itself included).
README_COLUMNS = {
    "table_name": (
        "varchar",
        "A table of this file (and of the Parquet set: <table_name>.parquet).",
    ),
    "description": ("varchar", "What the table is, from its dbt documentation."),
    "grain": ("varchar", "What one row is."),
    "how_to_count": ("varchar", "How to count or filter it without double counting."),
    "row_count": ("bigint", "Rows in this publish."),
}


@dataclass(frozen=True)
class TableDoc:
    """What a BI reader is told about one published table (from the dbt docs and meta)."""

    description: str
    grain: str
    how_to_count: str
    columns: dict[str, str]


def table_docs(manifest: dict, schema: str = "marts") -> dict[str, TableDoc]:
    """Each model's documentation from the dbt manifest (descriptions with their {% docs %}
    blocks rendered; grain and how_to_count from the model's meta)."""
    docs = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["schema"] != schema:
            continue
        meta = {**node.get("meta", {}), **node.get("config", {}).get("meta", {})}
        docs[node["name"]] = TableDoc(
            description=" ".join(node.get("description", "").split()),
            grain=meta.get("grain", ""),
            how_to_count=meta.get("how_to_count", ""),
            columns={
                name: " ".join(column.get("description", "").split())
                for name, column in node.get("columns", {}).items()
            },
        )
    return docs


META_DOC = TableDoc(
    description="About this publish: one row saying when, from which run, code and deliveries.",
    grain="one row",
    how_to_count="not counted: join or read it beside any mart",
    columns=META_DESCRIPTIONS,
)
README_DOC = TableDoc(
    description="What each published table is, its grain and how to count it correctly.",
    grain="one row per published table",
    how_to_count="one row per table: read it before writing a query",
    columns={name: text for name, (_type, text) in README_COLUMNS.items()},
)


@dataclass(frozen=True)
class PublishResult:
    publish_id: str
    path: Path
    tables: dict[str, int]
    #: parquet/current, the path BI tools are given; parquet_set is the folder it points at.
    parquet_current: Path
    parquet_set: Path
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


def current_parquet_set(publish_dir: Path) -> Path | None:
    """The folder of the current Parquet set (parquet/current resolved once); None before the
    first publish. Read every mart of one read from this folder."""
    current = publish_dir / PARQUET_DIR / PARQUET_CURRENT
    if not current.is_symlink():
        return None
    return Path(os.path.realpath(current))


def _pointed_sets(parquet: Path) -> set[str]:
    """Publish ids that parquet/current or parquet/CURRENT name: never removed."""
    named = set()
    current = parquet / PARQUET_CURRENT
    if current.is_symlink():
        named.add(Path(os.readlink(current)).name)
    pointer = parquet / PARQUET_POINTER
    if pointer.is_file():
        named.add(pointer.read_text().strip())
    return named


def remove_leftovers(publish_dir: Path) -> list[Path]:
    """What publishes that did not finish (killed, crashed) left: temporary files, unfinished
    Parquet sets, temporary pointers, and complete sets newer than the current one or with no
    current one at all (written, never switched to; publishes run one at a time and their ids
    grow with time)."""
    removed = []
    for path in [*publish_dir.glob(".*.tmp"), *publish_dir.glob(".*.tmp.wal")]:
        path.unlink(missing_ok=True)
        removed.append(path)
    parquet = publish_dir / PARQUET_DIR
    if not parquet.exists():
        return removed
    for path in [*parquet.glob("*/.*.tmp"), *parquet.glob(".*.tmp")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    named = _pointed_sets(parquet)
    for path in (parquet / PARQUET_SETS).glob("[!.]*"):
        if not named or path.name > max(named):
            shutil.rmtree(path)
            removed.append(path)
    return removed


def _prune_parquet_sets(parquet: Path, keep: int) -> None:
    """Keep the newest `keep` sets (at least two) and every set a pointer names."""
    sets = sorted(p for p in (parquet / PARQUET_SETS).glob("[!.]*") if p.is_dir())
    named = _pointed_sets(parquet)
    for path in sets[: -max(keep, 2)]:
        if path.name not in named:
            shutil.rmtree(path)


def _remove_old_parquet_layout(parquet: Path) -> None:
    """The layout before sets, parquet/<mart>/<mart>.parquet: removed once a set is current, so
    a BI tool still pointing at it fails loudly instead of reading a stale mart."""
    for folder in parquet.iterdir():
        if folder.name in (PARQUET_SETS, PARQUET_CURRENT) or folder.is_symlink():
            continue
        old = folder / f"{folder.name}.parquet"
        if folder.is_dir() and old.is_file():
            old.unlink()
            if not any(folder.iterdir()):
                folder.rmdir()


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


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _comment(con: duckdb.DuckDBPyConnection, docs: dict[str, TableDoc]) -> None:
    """Tables' and columns' descriptions as DuckDB comments (duckdb_tables().comment,
    duckdb_columns().comment), which BI tools show; in one transaction (committing each of ~300
    took 0.8-1.2 s of a publish, one commit 0.1 s)."""
    published: dict[str, set[str]] = {}
    for table, column in con.execute(
        "select table_name, column_name from duckdb_columns() where database_name = 'bi_new'"
    ).fetchall():
        published.setdefault(table, set()).add(column)
    statements = []
    for table, doc in docs.items():
        if table not in published:
            continue
        statements.append(f'comment on table bi_new.main."{table}" is {_sql_text(doc.description)}')
        statements += [
            f'comment on column bi_new.main."{table}"."{column}" is {_sql_text(text)}'
            for column, text in doc.columns.items()
            if text and column in published[table]  # `publish: false` columns are left out
        ]
    con.execute("begin transaction")
    try:
        con.execute("; ".join(statements))
    except duckdb.Error:
        con.execute("rollback")
        raise
    con.execute("commit")


def _write_readme(con: duckdb.DuckDBPyConnection, docs: dict[str, TableDoc], counts: dict) -> None:
    """One row per published table (`counts`: table -> rows, the readme included); a table
    without documentation gets NULLs, never made-up text."""
    columns = ", ".join(f"{name} {sql_type}" for name, (sql_type, _) in README_COLUMNS.items())
    con.execute(f"create table bi_new.main.{README_TABLE} ({columns})")
    rows = []
    for table in sorted(counts):
        doc = docs.get(table)
        described = (
            (doc.description, doc.grain or None, doc.how_to_count or None) if doc else (None,) * 3
        )
        rows.append((table, *described, counts[table]))
    con.executemany(f"insert into bi_new.main.{README_TABLE} values (?, ?, ?, ?, ?)", rows)


def _write_parquet(
    con: duckdb.DuckDBPyConnection, table: str, path: Path, publish_id: str, doc: TableDoc | None
):
    """One mart of the set: the publish id and the table's description in the schema metadata,
    each column's description in its field metadata (Arrow's, which pyarrow, pandas, Spark and
    DuckDB's own Arrow readers show)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = con.sql(f'from bi_new.main."{table}"').to_arrow_table()
    described = {}
    if doc is not None:
        described = {"description": doc.description, "grain": doc.grain,
                     "how_to_count": doc.how_to_count}  # fmt: skip
    fields = [
        field.with_metadata({"description": doc.columns[field.name]})
        if doc is not None and doc.columns.get(field.name)
        else field
        for field in data.schema
    ]
    schema = pa.schema(fields, metadata={"publish_id": publish_id, **described})
    pq.write_table(data.cast(schema), path)
    _fsync(path)


def _write_parquet_set(
    con: duckdb.DuckDBPyConnection,
    temp: Path,
    parquet: Path,
    tables: list[str],
    publish_id: str,
    docs: dict[str, TableDoc],
) -> Path:
    """Every table of the new file as parquet/sets/<id>/<table>.parquet, complete and fsynced
    before the folder gets its final name; not current yet."""
    sets = parquet / PARQUET_SETS
    staging = sets / f".{publish_id}.tmp"
    staging.mkdir(parents=True)
    con.execute(f"attach '{temp}' as bi_new (read_only)")
    try:
        for table in tables:
            _write_parquet(con, table, staging / f"{table}.parquet", publish_id, docs.get(table))
    finally:
        con.execute("detach bi_new")
    _fsync(staging)
    complete = sets / publish_id
    staging.rename(complete)
    _fsync(sets)
    return complete


def _switch_parquet(parquet: Path, publish_id: str) -> None:
    """The moment Parquet readers switch: a new symlink renamed over parquet/current (rename is
    atomic on POSIX), then CURRENT rewritten the same way."""
    link, current = parquet / f".{PARQUET_CURRENT}.{publish_id}.tmp", parquet / PARQUET_CURRENT
    os.symlink(f"{PARQUET_SETS}/{publish_id}", link)
    if current.is_dir() and not current.is_symlink():
        # A copy of the publish folder that did not keep the symlink (cp -r, a restore): moved
        # aside (the next publish removes it), so here alone current is briefly missing.
        current.rename(parquet / f".{PARQUET_CURRENT}.{publish_id}.copied.tmp")
    os.replace(link, current)
    pointer = parquet / f".{PARQUET_POINTER}.{publish_id}.tmp"
    pointer.write_text(publish_id + "\n")
    _fsync(pointer)
    os.replace(pointer, parquet / PARQUET_POINTER)
    _fsync(parquet)


def publish(
    con: duckdb.DuckDBPyConnection,
    publish_dir: Path,
    *,
    tables: dict[str, str],
    meta: dict,
    keep: int,
    publish_id: str | None = None,
    docs: dict[str, TableDoc] | None = None,
) -> PublishResult:
    """Write `tables` (name -> source relation in the warehouse) and a meta row, then swap.

    `con` is the warehouse connection; the caller holds the writer, so the marts cannot change
    while they are copied. `docs` (table -> its dbt documentation) become the comments, the
    Parquet metadata and the readme rows; meta and readme document themselves.
    """
    docs = {**(docs or {}), META_TABLE: META_DOC, README_TABLE: README_DOC}
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
        counts[README_TABLE] = len(counts) + 1
        _write_readme(con, docs, counts)
        _comment(con, docs)
    finally:
        con.execute("detach bi_new")  # checkpoints the new file
    _fsync(temp)

    parquet = publish_dir / PARQUET_DIR
    parquet_set = _write_parquet_set(con, temp, parquet, list(counts), publish_id, docs)

    crash_point("publish_swap")
    _switch_parquet(parquet, publish_id)
    os.replace(temp, final)  # the moment DuckDB readers switch; the publish is committed
    _fsync(publish_dir)
    _remove_old_parquet_layout(parquet)
    _prune_parquet_sets(parquet, keep)

    history = publish_dir / "history"
    history.mkdir(exist_ok=True)
    kept = history / f"oversight-{publish_id}.duckdb"
    try:
        os.link(final, kept)
    except OSError:  # filesystems without hard links
        shutil.copy2(final, kept)
    published = sorted(history.glob("oversight-*.duckdb"))
    for old in published[:-keep]:
        old.unlink(missing_ok=True)
    return PublishResult(
        publish_id=publish_id,
        path=final,
        tables=counts,
        parquet_current=parquet / PARQUET_CURRENT,
        parquet_set=parquet_set,
        history=sorted(history.glob("oversight-*.duckdb")),
        seconds=time.perf_counter() - started,
    )
