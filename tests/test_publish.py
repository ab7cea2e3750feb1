"""The BI publish: atomic replacement, kill safety, readers, DuckDB 1.5 clients, keep-N."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from core.settings import PROJECT_ROOT
from expectations.publish_gate import mart_rules
from orchestration.lib.dbt import load_manifest
from publishing.bi_database import (
    PUBLISHED_NAME,
    STORAGE_VERSION,
    publish,
    remove_leftovers,
)

TABLES = {"site_kpis": "marts.site_kpis", "study_dates": "marts.study_dates"}


def _meta(as_of: str = "2026-11-16") -> dict:
    return {
        "published_at": dt.datetime(2026, 11, 22, 6, 0),
        "dagster_run_id": "test",
        "as_of_date": dt.date.fromisoformat(as_of),
        "code_version": "test",
        "kri_definitions_version": "t1",
        "deliveries_included": 2,
        "delivery_ids": "[1, 2]",
        "registry_data_timestamp": None,
    }


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.site_kpis as select 'S' || (i % 7) as site_id, i, i / 10.0 as rate "
            "from range(2000) t(i)"
        )
        con.execute(
            "create table marts.study_dates as select 'SYN-00' || i as study_id, "
            "date '2026-01-01' + i::integer as first_patient from range(4) t(i)"
        )
    return path


def _publish(warehouse: Path, publish_dir: Path, publish_id: str, keep: int = 3):
    with duckdb.connect(str(warehouse)) as con:
        return publish(
            con, publish_dir, tables=TABLES, meta=_meta(), keep=keep, publish_id=publish_id
        )


def _published_id(publish_dir: Path) -> str:
    with duckdb.connect(str(publish_dir / PUBLISHED_NAME), read_only=True) as con:
        return con.execute("select publish_id from meta").fetchall()[0][0]


def _python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def test_publish_writes_marts_meta_parquet_and_keeps_the_last_n(warehouse, tmp_path):
    publish_dir = tmp_path / "publish"
    for n in range(5):
        result = _publish(warehouse, publish_dir, f"2026112{n}T000000Z", keep=3)
    assert result.tables == {"site_kpis": 2000, "study_dates": 4, "meta": 1}
    assert _published_id(publish_dir) == "20261124T000000Z"
    with duckdb.connect(str(publish_dir / PUBLISHED_NAME), read_only=True) as con:
        tags = con.execute(
            "select tags from duckdb_databases() where database_name = current_database()"
        ).fetchall()[0][0]
        meta = con.execute("select as_of_date, deliveries_included from meta").fetchall()
    assert tags["storage_version"].startswith(STORAGE_VERSION)
    assert meta == [(dt.date(2026, 11, 16), 2)]
    assert [p.name for p in result.history] == [
        f"oversight-2026112{n}T000000Z.duckdb" for n in (2, 3, 4)
    ]
    assert os.path.samefile(result.history[-1], publish_dir / PUBLISHED_NAME)
    for table in ("site_kpis", "study_dates", "meta"):
        files = list((publish_dir / "parquet" / table).iterdir())
        assert [f.name for f in files] == [f"{table}.parquet"]
    rows = duckdb.sql(
        f"select count(*) from '{publish_dir / 'parquet' / 'site_kpis' / 'site_kpis.parquet'}'"
    ).fetchall()
    assert rows == [(2000,)]


KILL_SCRIPT = """
import os, sys
import duckdb
import publishing.bi_database as bi

point, warehouse, publish_dir, publish_id = sys.argv[1:5]
real_replace, real_copy = os.replace, bi._copy_table

def die():
    os._exit(9)

if point == "while_copying":
    def copy_then_die(con, source, table):
        real_copy(con, source, table)
        die()
    bi._copy_table = copy_then_die
elif point == "before_swap":
    os.replace = lambda a, b: die()
elif point == "after_swap":
    def swap_then_die(a, b):
        real_replace(a, b)
        die()
    os.replace = swap_then_die

with duckdb.connect(warehouse) as con:
    con.execute("update marts.study_dates set first_patient = first_patient + 1")
    bi.publish(con, __import__("pathlib").Path(publish_dir),
               tables={"site_kpis": "marts.site_kpis", "study_dates": "marts.study_dates"},
               meta={"as_of_date": None}, keep=3, publish_id=publish_id)
"""


@pytest.mark.parametrize(
    ("point", "expected"),
    [("while_copying", "old"), ("before_swap", "old"), ("after_swap", "new")],
)
def test_a_killed_publish_leaves_the_old_or_the_new_file(warehouse, tmp_path, point, expected):
    publish_dir = tmp_path / "publish"
    _publish(warehouse, publish_dir, "20261101T000000Z")
    before = (publish_dir / PUBLISHED_NAME).read_bytes()

    killed = _python(KILL_SCRIPT, point, str(warehouse), str(publish_dir), "20261102T000000Z")
    assert killed.returncode == 9, killed.stderr

    published = _published_id(publish_dir)  # opens: never a broken file
    assert published == {"old": "20261101T000000Z", "new": "20261102T000000Z"}[expected]
    if expected == "old":
        assert (publish_dir / PUBLISHED_NAME).read_bytes() == before
    with duckdb.connect(str(publish_dir / PUBLISHED_NAME), read_only=True) as con:
        assert con.execute("select count(*) from site_kpis").fetchall() == [(2000,)]

    _publish(warehouse, publish_dir, "20261103T000000Z")  # the next publish cleans up
    assert _published_id(publish_dir) == "20261103T000000Z"
    assert not [p for p in publish_dir.rglob("*.tmp*")]
    assert remove_leftovers(publish_dir) == []


READER_SCRIPT = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
first = con.execute("select publish_id from meta").fetchall()[0][0]
print("ready", first, flush=True)
reads, deadline = 0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    ids = con.execute("select publish_id from meta").fetchall()[0][0]
    total = con.execute("select count(*), sum(i) from site_kpis").fetchall()[0]
    assert ids == first and total[0] == 2000, (ids, total)
    reads += 1
print("done", first, reads, flush=True)
"""


def test_a_reader_keeps_reading_while_a_publish_replaces_the_file(warehouse, tmp_path):
    publish_dir = tmp_path / "publish"
    _publish(warehouse, publish_dir, "20261101T000000Z")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER_SCRIPT, str(publish_dir / PUBLISHED_NAME), "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert reader.stdout.readline().split() == ["ready", "20261101T000000Z"]
    for n in (2, 3):  # two publishes while the reader holds the old file open
        _publish(warehouse, publish_dir, f"2026110{n}T000000Z")
        time.sleep(0.2)
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    done, first, reads = out.split()
    assert (done, first) == ("done", "20261101T000000Z") and int(reads) > 0

    fresh = _python(
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print(c.execute('select publish_id from meta').fetchall()[0][0])",
        str(publish_dir / PUBLISHED_NAME),
    )
    assert fresh.stdout.strip() == "20261103T000000Z", fresh.stderr


@pytest.fixture(scope="session")
def duckdb15_python(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with DuckDB 1.5.x, isolated from the project's (which has DuckDB 2); kept in
    pytest's cache between runs when the cache is enabled."""
    cache = getattr(pytestconfig, "cache", None)
    env_dir = (
        cache.mkdir("duckdb-1.5-client")
        if cache is not None
        else tmp_path_factory.mktemp("duckdb-1.5-client")
    )
    python = env_dir / "bin" / "python"
    if (
        not python.exists()
        or subprocess.run([str(python), "-c", "import duckdb"], capture_output=True).returncode
    ):
        shutil.rmtree(env_dir, ignore_errors=True)
        uv = shutil.which("uv")
        if uv:
            steps = [[uv, "venv", "--quiet", "--python", sys.executable, str(env_dir)],
                     [uv, "pip", "install", "--quiet", "--python", str(python), "duckdb>=1.5,<1.6"]]  # fmt: skip
        else:
            steps = [[sys.executable, "-m", "venv", str(env_dir)],
                     [str(python), "-m", "pip", "install", "--quiet", "duckdb>=1.5,<1.6"]]  # fmt: skip
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"setting up a DuckDB 1.5 client failed: {done.stderr}"
    return python


DUMP_SCRIPT = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
tables = [t for (t,) in con.execute("select table_name from duckdb_tables() order by 1").fetchall()]
print(json.dumps({
    "version": duckdb.__version__,
    "tables": {t: con.execute(f'select * from "{t}" order by all').fetchall() for t in tables},
}, default=str))
"""


def test_the_published_file_opens_with_a_duckdb_1_5_client(warehouse, tmp_path, duckdb15_python):
    publish_dir = tmp_path / "publish"
    _publish(warehouse, publish_dir, "20261101T000000Z")
    done = subprocess.run(
        [str(duckdb15_python), "-c", DUMP_SCRIPT, str(publish_dir / PUBLISHED_NAME)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    dumped = json.loads(done.stdout)
    assert dumped["version"].startswith("1.5.")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table, source in TABLES.items():
            expected = con.execute(f"select * from {source} order by all").fetchall()
            assert dumped["tables"][table] == json.loads(json.dumps(expected, default=str))
    assert dumped["tables"]["meta"][0][0] == "20261101T000000Z"


def test_the_real_marts_read_back_equal_through_duckdb_1_5(refreshed_portfolio, duckdb15_python):
    published = refreshed_portfolio / "publish" / PUBLISHED_NAME
    done = subprocess.run(
        [str(duckdb15_python), "-c", DUMP_SCRIPT, str(published)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    dumped = json.loads(done.stdout)["tables"]
    rules = mart_rules(load_manifest())  # columns declared `publish: false` are left out
    with duckdb.connect(str(refreshed_portfolio / "warehouse.duckdb"), read_only=True) as con:
        marts = [
            t
            for (t,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
        ]
        assert len(marts) > 10 and set(dumped) == {*marts, "meta"}
        for mart in marts:
            source = rules[mart].published_source(f"marts.{mart}")
            expected = con.execute(f"select * from {source} order by all").fetchall()
            assert dumped[mart] == json.loads(json.dumps(expected, default=str)), mart
