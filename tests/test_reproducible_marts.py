"""Every mart is a deterministic function of the stored deliveries, seeds and definitions.

A past week rebuilt from the stored deliveries must equal what was published, byte for byte:
no result may depend on the physical order of the warehouse's rows (an interrupted and rerun
load stores them in another order) or on how DuckDB's threads split an aggregation.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.demo import refresh_job
from publishing.bi_database import META_TABLE

pytestmark = pytest.mark.integration

#: What the marts are built from: the raw feeds, the delivery ledger and gate results, the registry.
SOURCE_SCHEMAS = ("raw", "ops", "registry")


def mart_digests(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Row count and an exact content hash per mart (no rounding: equal means equal)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        marts = [
            t
            for (t,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
        ]
        return {
            mart: con.execute(
                "select count(*), md5(coalesce(string_agg(r, chr(10) order by r), '')) "
                f"from (select m::varchar as r from marts.{mart} as m)"
            ).fetchall()[0]
            for mart in marts
        }


def shuffle_sources(warehouse: Path) -> list[str]:
    """Rewrite every source table's rows in a random physical order (schema kept)."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("select setseed(0.42)")
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() where schema_name in "
            f"({', '.join(repr(s) for s in SOURCE_SCHEMAS)}) order by all"
        ).fetchall()
        for schema, table in tables:
            con.execute(
                f'create temp table shuffled as select * from {schema}."{table}" order by random()'
            )
            con.execute(f'delete from {schema}."{table}"')
            con.execute(f'insert into {schema}."{table}" select * from shuffled')
            con.execute("drop table shuffled")
        con.execute("checkpoint")
    return [f"{schema}.{table}" for schema, table in tables]


def parquet_hashes(publish_dir: Path) -> dict[str, str]:
    """Content hash per published Parquet mart of the current set: schema and rows in the file's
    own order (the files' key-value metadata names their publish id, so whole-file bytes differ
    between two publishes by design)."""
    files = sorted((publish_dir / "parquet" / "current").glob("*.parquet"))
    with duckdb.connect() as con:
        hashes = {
            path.stem: con.execute(
                "select md5((select string_agg(column_name || ' ' || column_type, ',') "
                "from (describe select * from read_parquet($p))) || chr(10) || "
                "coalesce(string_agg(r, chr(10) order by n), '')) from (select "
                "m::varchar as r, file_row_number as n from read_parquet($p, file_row_number = true) "
                "as m)",
                {"p": str(path)},
            ).fetchall()[0][0]
            for path in files
            if path.stem != META_TABLE
        }
    assert len(hashes) == len(files) - 1 and "enrollment_forecast" in hashes
    return hashes


def test_marts_rebuilt_from_shuffled_rows_are_identical(refreshed_env: Path, dagster_instance):
    warehouse, publish_dir = refreshed_env / "warehouse.duckdb", refreshed_env / "publish"
    before, published_before = mart_digests(warehouse), parquet_hashes(publish_dir)
    assert {
        "enrollment_forecast",
        "enrollment_forecast_path",
        "site_flags",
        "flag_status",
        "flag_episodes",
        "oversight_actions",
        "unattended_signals",
    } <= set(before)

    shuffled = shuffle_sources(warehouse)
    assert {"raw.subjects", "ops.deliveries", "registry.studies"} <= set(shuffled)
    result = dg.execute_job(
        dg.reconstructable(refresh_job), instance=dagster_instance, tags={"smo/rebuild": "true"}
    )
    assert result.success

    after = mart_digests(warehouse)
    differing = sorted(m for m in before if before[m] != after.get(m))
    assert not differing, f"marts that changed with the physical row order: {differing}"
    # the published Parquet marts hold the same rows in the same order
    published_after = parquet_hashes(publish_dir)
    assert published_after == published_before
