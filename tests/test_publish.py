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
    current_parquet_set,
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


def _parquet(publish_dir: Path) -> Path:
    return publish_dir / "parquet"


def _current_set_id(publish_dir: Path) -> str:
    """The publish id of the current Parquet set, read from its meta.parquet."""
    folder = current_parquet_set(publish_dir)
    return duckdb.sql(f"select publish_id from '{folder / 'meta.parquet'}'").fetchall()[0][0]


def test_publish_writes_marts_meta_parquet_and_keeps_the_last_n(warehouse, tmp_path):
    publish_dir = tmp_path / "publish"
    for n in range(5):
        result = _publish(warehouse, publish_dir, f"2026112{n}T000000Z", keep=3)
    assert result.tables == {"site_kpis": 2000, "study_dates": 4, "meta": 1, "readme": 4}
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

    parquet = _parquet(publish_dir)
    assert sorted(p.name for p in parquet.iterdir()) == ["CURRENT", "current", "sets"]
    assert sorted(p.name for p in (parquet / "sets").iterdir()) == [
        f"2026112{n}T000000Z" for n in (2, 3, 4)
    ]
    assert os.readlink(parquet / "current") == "sets/20261124T000000Z"  # relative: shares work
    assert (parquet / "CURRENT").read_text() == "20261124T000000Z\n"
    assert result.parquet_current == parquet / "current"
    assert (
        result.parquet_set
        == current_parquet_set(publish_dir)
        == parquet / "sets" / result.publish_id
    )
    assert sorted(p.name for p in result.parquet_set.iterdir()) == [
        "meta.parquet", "readme.parquet", "site_kpis.parquet", "study_dates.parquet"
    ]  # fmt: skip
    assert _current_set_id(publish_dir) == "20261124T000000Z"
    for table in ("site_kpis", "study_dates", "meta", "readme"):
        kv = duckdb.sql(
            "select key::varchar, value::varchar "
            f"from parquet_kv_metadata('{result.parquet_set / f'{table}.parquet'}')"
        ).fetchall()
        assert ("publish_id", "20261124T000000Z") in kv
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for table, source in TABLES.items():
            expected = con.execute(f"select * from {source} order by all").fetchall()
            path = parquet / "current" / f"{table}.parquet"
            assert duckdb.sql(f"select * from '{path}' order by all").fetchall() == expected


def test_the_first_set_publish_removes_the_old_per_mart_layout(warehouse, tmp_path):
    parquet = _parquet(tmp_path / "publish")
    for table in ("site_kpis", "meta"):
        (parquet / table).mkdir(parents=True)
        duckdb.sql(f"copy (select 1 as old) to '{parquet / table / f'{table}.parquet'}'")
    (parquet / "site_kpis" / ".site_kpis.parquet.20261001T000000Z.tmp").write_text("")

    _publish(warehouse, tmp_path / "publish", "20261101T000000Z")

    assert sorted(p.name for p in parquet.iterdir()) == ["CURRENT", "current", "sets"]


def test_a_reader_holding_the_previous_set_can_finish_even_with_keep_1(warehouse, tmp_path):
    publish_dir = tmp_path / "publish"
    _publish(warehouse, publish_dir, "20261101T000000Z", keep=1)
    resolved = current_parquet_set(publish_dir)  # a reader resolves the pointer...
    _publish(warehouse, publish_dir, "20261102T000000Z", keep=1)  # ...a publish switches it
    path = resolved / "site_kpis.parquet"
    assert duckdb.sql(f"select count(*) from '{path}'").fetchall() == [(2000,)]
    _publish(warehouse, publish_dir, "20261103T000000Z", keep=1)
    assert [p.name for p in (publish_dir / "history").iterdir()] == [
        "oversight-20261103T000000Z.duckdb"
    ]
    assert sorted(p.name for p in (_parquet(publish_dir) / "sets").iterdir()) == [
        "20261102T000000Z", "20261103T000000Z"
    ]  # fmt: skip


def test_a_publish_folder_copied_without_its_symlink_is_switched_again(warehouse, tmp_path):
    """cp -r or a restore turns parquet/current into a folder; the next publish makes it the
    symlink again and removes the copy."""
    publish_dir, copied = tmp_path / "publish", tmp_path / "copied"
    _publish(warehouse, publish_dir, "20261101T000000Z")
    shutil.copytree(publish_dir, copied)  # follows symlinks, like cp -r
    assert not (_parquet(copied) / "current").is_symlink()

    _publish(warehouse, copied, "20261102T000000Z")

    assert os.readlink(_parquet(copied) / "current") == "sets/20261102T000000Z"
    assert _current_set_id(copied) == "20261102T000000Z"
    _publish(warehouse, copied, "20261103T000000Z")
    assert sorted(p.name for p in _parquet(copied).iterdir()) == ["CURRENT", "current", "sets"]


KILL_SCRIPT = """
import os, signal, sys
from pathlib import Path
import duckdb
import publishing.bi_database as bi

point, warehouse, publish_dir, publish_id = sys.argv[1:5]
real_replace, real_copy, real_parquet = os.replace, bi._copy_table, bi._write_parquet

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "while_copying":
    def copy_then_die(con, source, table):
        real_copy(con, source, table)
        die()
    bi._copy_table = copy_then_die
elif point == "while_writing_parquet":
    def write_then_die(*args):
        real_parquet(*args)
        die()
    bi._write_parquet = write_then_die
elif point in ("after_parquet_switch", "after_swap"):
    target = {"after_parquet_switch": "CURRENT", "after_swap": bi.PUBLISHED_NAME}[point]
    def replace_then_die(a, b):
        real_replace(a, b)
        if Path(b).name == target:
            die()
    os.replace = replace_then_die
# before_swap: the real crash point, SMO_TEST_KILL_AT=publish_swap

with duckdb.connect(warehouse) as con:
    con.execute("update marts.study_dates set first_patient = first_patient + 1")
    bi.publish(con, Path(publish_dir),
               tables={"site_kpis": "marts.site_kpis", "study_dates": "marts.study_dates"},
               meta={"as_of_date": None}, keep=3, publish_id=publish_id)
"""


@pytest.mark.parametrize(
    ("point", "duckdb_file", "parquet_set"),
    [
        ("while_copying", "old", "old"),
        ("while_writing_parquet", "old", "old"),
        ("before_swap", "old", "old"),
        ("after_parquet_switch", "old", "new"),
        ("after_swap", "new", "new"),
    ],
)
def test_a_killed_publish_leaves_the_old_or_the_new_file_and_set(
    warehouse, tmp_path, point, duckdb_file, parquet_set
):
    publish_dir = tmp_path / "publish"
    _publish(warehouse, publish_dir, "20261101T000000Z")
    before = (publish_dir / PUBLISHED_NAME).read_bytes()
    ids = {"old": "20261101T000000Z", "new": "20261102T000000Z"}

    env = {**os.environ, "SMO_TEST_KILL_AT": "publish_swap" if point == "before_swap" else ""}
    killed = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, point, str(warehouse), str(publish_dir), ids["new"]],
        capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT, env=env,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr

    assert _published_id(publish_dir) == ids[duckdb_file]  # opens: never a broken file
    if duckdb_file == "old":
        assert (publish_dir / PUBLISHED_NAME).read_bytes() == before
    with duckdb.connect(str(publish_dir / PUBLISHED_NAME), read_only=True) as con:
        assert con.execute("select count(*) from site_kpis").fetchall() == [(2000,)]
    assert _current_set_id(publish_dir) == ids[parquet_set]  # a whole set, never a mix
    first_patient = duckdb.sql(
        f"select min(first_patient) from '{current_parquet_set(publish_dir)}/study_dates.parquet'"
    ).fetchall()
    assert first_patient == [(dt.date(2026, 1, 1) + dt.timedelta(parquet_set == "new"),)]

    _publish(warehouse, publish_dir, "20261103T000000Z")  # the next publish cleans up
    assert _published_id(publish_dir) == _current_set_id(publish_dir) == "20261103T000000Z"
    assert not [p for p in publish_dir.rglob("*.tmp*")]
    assert remove_leftovers(publish_dir) == []
    switched = ["20261102T000000Z"] if parquet_set == "new" else []  # never-current sets go
    assert sorted(p.name for p in (_parquet(publish_dir) / "sets").iterdir()) == [
        "20261101T000000Z", *switched, "20261103T000000Z"
    ]  # fmt: skip


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


SET_READER_SCRIPT = """
import json, os, sys
from collections import Counter
import duckdb

parquet, stop = sys.argv[1:3]
con = duckdb.connect()
reads = Counter()

def read_set():
    folder = os.path.realpath(os.path.join(parquet, "current"))  # resolved once per read
    publish_id = con.sql(f"select publish_id from '{folder}/meta.parquet'").fetchall()[0][0]
    kpis = con.sql(f"select count(*), sum(i) from '{folder}/site_kpis.parquet'").fetchall()[0]
    first = con.sql(f"select max(first_patient) from '{folder}/study_dates.parquet'").fetchall()
    reads[(publish_id, kpis[0], int(kpis[1]), str(first[0][0]))] += 1
    return publish_id

read_set()
print("ready", flush=True)
while not (os.path.exists(stop) and read_set() == open(stop).read()):
    read_set()
print(json.dumps([[*key, n] for key, n in reads.items()]))
"""


def _marts_marker(warehouse: Path) -> list:
    """What a set reader computes, from the warehouse: rows and sum(i) of site_kpis, the newest
    first_patient of study_dates."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        count, total = con.execute("select count(*), sum(i) from marts.site_kpis").fetchall()[0]
        first = con.execute("select max(first_patient) from marts.study_dates").fetchall()[0][0]
    return [count, int(total), str(first)]


def test_readers_of_the_parquet_set_never_mix_publishes(warehouse, tmp_path):
    """Readers resolve parquet/current once and read meta + two marts, in a loop, while three
    publishes happen; every publish changes both marts, so a mixed read cannot go unnoticed."""
    publish_dir, stop = tmp_path / "publish", tmp_path / "stop"
    expected = {"20261101T000000Z": _marts_marker(warehouse)}
    _publish(warehouse, publish_dir, "20261101T000000Z", keep=5)
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", SET_READER_SCRIPT, str(_parquet(publish_dir)), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
        )
        for _ in range(2)
    ]
    for reader in readers:
        assert reader.stdout.readline().strip() == "ready", reader.stderr.read()
    for n in (2, 3, 4):
        with duckdb.connect(str(warehouse)) as con:
            con.execute("update marts.site_kpis set i = i + 1")
            con.execute("update marts.study_dates set first_patient = first_patient + 1")
        publish_id = f"2026110{n}T000000Z"
        expected[publish_id] = _marts_marker(warehouse)
        _publish(warehouse, publish_dir, publish_id, keep=5)
        time.sleep(0.3)
    stop.write_text(publish_id)  # each reader stops after a read of the last publish

    seen, total = set(), 0
    for reader in readers:
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err  # no reader error
        for publish_id, *marker, n in json.loads(out):
            assert marker == expected[publish_id], (publish_id, marker)  # never a mix
            seen.add(publish_id)
            total += n
    assert {"20261101T000000Z", "20261104T000000Z"} <= seen
    assert total > 100
    print(f"{total} set reads, publishes seen: {sorted(seen)}")


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
        assert len(marts) > 10 and set(dumped) == {*marts, "meta", "readme"}
        for mart in marts:
            source = rules[mart].published_source(f"marts.{mart}")
            expected = con.execute(f"select * from {source} order by all").fetchall()
            assert dumped[mart] == json.loads(json.dumps(expected, default=str)), mart


def test_the_real_refresh_publishes_every_mart_as_one_parquet_set(refreshed_portfolio):
    publish_dir = refreshed_portfolio / "publish"
    folder = current_parquet_set(publish_dir)
    assert folder.parent == publish_dir / "parquet" / "sets"
    assert (publish_dir / "parquet" / "CURRENT").read_text().strip() == folder.name
    con = duckdb.connect()
    con.execute(f"attach '{refreshed_portfolio / 'warehouse.duckdb'}' as wh (read_only)")
    con.execute(f"attach '{publish_dir / PUBLISHED_NAME}' as bi (read_only)")
    marts = [
        t
        for (t,) in con.execute(
            "select table_name from duckdb_tables() where database_name = 'wh' "
            "and schema_name = 'marts' order by 1"
        ).fetchall()
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{t}.parquet" for t in [*marts, "meta", "readme"]
    )
    rules = mart_rules(load_manifest())
    for mart in marts:
        # the published columns: those declared `publish: false` stay in the warehouse
        source = rules[mart].published_source(f"wh.marts.{mart}")
        differences = con.execute(
            f"select count(*) from ((from '{folder / mart}.parquet' except all from {source}) "
            f"union all (from {source} except all from '{folder / mart}.parquet'))"
        ).fetchall()
        assert differences == [(0,)], mart
    assert con.execute(
        f"select publish_id from '{folder / 'meta.parquet'}' union all select publish_id from bi.meta"
    ).fetchall() == [(folder.name,), (folder.name,)]
