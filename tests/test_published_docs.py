"""The published file documents itself for BI tools: comments on every table and column (read by
DuckDB 2 and 1.5 clients), the same descriptions in the Parquet set's metadata, a KPI dictionary
and a readme table; and SQLAlchemy tools (Superset) reflect every table through duckdb-engine."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from publishing.bi_database import PUBLISHED_NAME, current_parquet_set
from tests.conftest import isolated_python

pytestmark = pytest.mark.integration

#: The working BI driver set (README "Connecting BI tools"), bisected with duckdb-engine 0.17.0:
#: SQLAlchemy 2.0.55+ get_pk_constraint casts to REGCLASS and 2.1 get_columns joins
#: pg_catalog.pg_collation, neither of which DuckDB has (Mause/duckdb_engine#1379, #1391);
#: 2.0.54 is the newest SQLAlchemy that reflects.
BI_DRIVERS = ("duckdb>=1.5,<1.6", "duckdb-engine==0.17.0", "sqlalchemy==2.0.54")

COMMENTS_SCRIPT = """
import json, sys
import duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print(json.dumps({
    "version": duckdb.__version__,
    "tables": con.execute("select table_name, comment from duckdb_tables() order by 1").fetchall(),
    "columns": con.execute(
        "select table_name, column_name, comment from duckdb_columns() where not internal"
    ).fetchall(),
}))
"""

REFLECT_SCRIPT = """
import json, sys, warnings
import sqlalchemy as sa
warnings.simplefilter("ignore")  # duckdb-engine: no index reflection
engine = sa.create_engine(f"duckdb:///{sys.argv[1]}", connect_args={"read_only": True})
inspector = sa.inspect(engine)
out = {"versions": [sa.__version__], "schemas": inspector.get_schema_names(), "tables": {}}
for table in inspector.get_table_names():
    columns = inspector.get_columns(table)
    out["tables"][table] = {
        "columns": [[c["name"], str(c["type"]), c.get("comment")] for c in columns],
        "pk": inspector.get_pk_constraint(table)["constrained_columns"],
        "comment": inspector.get_table_comment(table)["text"],
    }
with engine.connect() as con:  # what a chart then runs
    out["rows"] = con.execute(sa.text("select count(*) from site_flags")).scalar()
print(json.dumps(out))
"""


def _run(python: Path, script: str, published: Path) -> dict:
    done = subprocess.run(
        [str(python), "-c", script, str(published)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def published(refreshed_portfolio: Path) -> Path:
    return refreshed_portfolio / "publish" / PUBLISHED_NAME


def _comments(published: Path) -> tuple[dict, dict]:
    with duckdb.connect(str(published), read_only=True) as con:
        tables = dict(con.execute("select table_name, comment from duckdb_tables()").fetchall())
        columns = {
            (t, c): comment
            for t, c, comment in con.execute(
                "select table_name, column_name, comment from duckdb_columns() where not internal"
            ).fetchall()
        }
    return tables, columns


def test_every_published_table_and_column_has_a_comment(published):
    tables, columns = _comments(published)
    assert len(tables) > 20 and {"kpi_dictionary", "readme", "meta", "site_flags"} <= set(tables)
    assert [t for t, comment in tables.items() if not (comment or "").strip()] == []
    assert [k for k, comment in columns.items() if not (comment or "").strip()] == []
    # the dbt docs, with their {% docs %} blocks rendered
    assert "{{" not in json.dumps([*tables.values(), *columns.values()])
    assert columns[("site_flags", "comparison_group")].startswith("Whom the site is compared")


def test_the_comments_survive_storage_v1_5_and_read_in_duckdb_1_5(published, duckdb15_python):
    tables, columns = _comments(published)
    dumped = _run(duckdb15_python, COMMENTS_SCRIPT, published)
    assert dumped["version"].startswith("1.5.")
    assert dict(map(tuple, dumped["tables"])) == tables
    assert {(t, c): comment for t, c, comment in dumped["columns"]} == columns


def test_the_readme_says_each_tables_grain_and_how_to_count(published):
    tables, _ = _comments(published)
    with duckdb.connect(str(published), read_only=True) as con:
        readme = {
            row[0]: row[1:]
            for row in con.execute(
                "select table_name, description, grain, how_to_count, row_count from readme"
            ).fetchall()
        }
        counts = {t: con.execute(f'select count(*) from "{t}"').fetchall()[0][0] for t in tables}
        groups = con.execute(
            "select list(distinct comparison_group order by comparison_group), "
            "count(*) // count(distinct (as_of_date, smo_id, study_id, site_id, kri_id)) "
            "from site_flags"
        ).fetchall()[0]
    assert set(readme) == set(tables)
    for table, (description, grain, how_to_count, rows) in readme.items():
        assert description == tables[table] and grain and how_to_count, table
        assert rows == counts[table], table
    assert "comparison_group = 'study'" in readme["site_flags"][2]
    assert groups == (["portfolio", "study"], 2)  # why: a naive flag = 'red' counts sites twice


def test_the_kpi_dictionary_covers_every_published_kpi_and_kri(published):
    with duckdb.connect(str(published), read_only=True) as con:
        missing_kris = con.execute(
            "select distinct kri_id from site_flags except "
            "select indicator_id from kpi_dictionary where indicator_type = 'kri' and level = 'site'"
        ).fetchall()
        missing_kpis = con.execute(
            "select distinct kpi_id from smo_scorecard union select distinct kpi_id "
            "from kpi_weekly_history except "
            "select indicator_id from kpi_dictionary where indicator_type = 'kpi'"
        ).fetchall()
        rated = con.execute(
            "select distinct kpi_id from smo_scorecard where rag is not null except "
            "select kpi_id from kpi_dictionary where indicator_type = 'kri' and level = 'smo'"
        ).fetchall()
        formats = dict(
            con.execute(
                "select is_fraction, list(distinct display_format) from kpi_dictionary group by 1"
            ).fetchall()
        )
        # shares stay fractions (numerator / denominator, never x 100) in every published week
        scaled = con.execute(
            "select h.kpi_id, count(*) from kpi_weekly_history as h join kpi_dictionary as d "
            "on d.indicator_type = 'kpi' and d.indicator_id = h.kpi_id where d.is_fraction "
            "and h.denominator > 0 and abs(h.value - h.numerator / h.denominator) > 1e-9 group by 1"
        ).fetchall()
        fractions = con.execute(
            "select count(*) from kpi_weekly_history where denominator > 0 and kpi_id in "
            "(select indicator_id from kpi_dictionary where is_fraction)"
        ).fetchall()[0][0]
        funnel = con.execute(
            "select distinct threshold_scale from kpi_dictionary where method = 'funnel'"
        ).fetchall()
    assert missing_kris == [] and missing_kpis == [] and rated == []
    assert formats[True] == ["0.0%"] and "0.0%" not in formats[False]
    assert scaled == [] and fractions > 100
    assert funnel == [("z-score",)]


def test_the_parquet_set_carries_the_descriptions(published):
    tables, columns = _comments(published)
    folder = current_parquet_set(published.parent)
    assert sorted(p.stem for p in folder.glob("*.parquet")) == sorted(tables)
    for table, comment in tables.items():
        schema = pq.read_schema(folder / f"{table}.parquet")
        assert schema.metadata[b"description"].decode() == comment, table
        assert schema.metadata[b"publish_id"].decode() == folder.name
        for field in schema:
            assert field.metadata[b"description"].decode() == columns[(table, field.name)]


@pytest.fixture(scope="module")
def bi_python(pytestconfig, tmp_path_factory) -> Path:
    return isolated_python(pytestconfig, tmp_path_factory, "bi-sqlalchemy-client", *BI_DRIVERS)


def test_sqlalchemy_reflects_every_published_table_as_superset_does(published, bi_python):
    reflected = _run(bi_python, REFLECT_SCRIPT, published)
    tables, columns = _comments(published)
    with duckdb.connect(str(published), read_only=True) as con:
        order = con.execute(
            "select table_name, list(column_name order by column_index) from duckdb_columns() "
            "where not internal group by 1"
        ).fetchall()
    assert reflected["versions"] == ["2.0.54"]
    assert set(reflected["tables"]) == set(tables)
    for table, names in order:
        got = reflected["tables"][table]
        assert [name for name, _type, _comment in got["columns"]] == names, table
        assert all(kind != "NullType" for _name, kind, _comment in got["columns"]), table
        assert got["pk"] == []  # published tables are read-only copies, no constraints
        # what Superset shows beside a table and its columns
        assert got["comment"] == tables[table]
        assert [comment for name, _type, comment in got["columns"]] == [
            columns[(table, name)] for name in names
        ], table
    assert reflected["rows"] > 0


def test_the_newest_bi_drivers_still_need_the_pin(published, pytestconfig, tmp_path_factory):
    """The newest duckdb-engine and SQLAlchemy from the registry still fail on the known upstream
    bug (Mause/duckdb_engine#1379): when this test fails, upstream fixed it; raise BI_DRIVERS and
    the README's "Connecting BI tools" to the newest versions."""
    newest = isolated_python(
        pytestconfig, tmp_path_factory, "bi-sqlalchemy-newest", "duckdb>=1.5", "duckdb-engine",
        "sqlalchemy", cached=False,
    )  # fmt: skip
    done = subprocess.run(
        [str(newest), "-c", REFLECT_SCRIPT, str(published)], capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode != 0, "reflection works with the newest drivers: update the pin"
    assert "pg_collation" in done.stderr or "REGCLASS" in done.stderr, done.stderr[-2000:]
