"""Scaffolding: a tiny site roster so the spine (Python asset -> staging -> mart) runs.

Replaced by the SMO delivery ingest, which loads real deliveries into the same `raw` schema.
"""

import dagster as dg
import polars as pl

from ingest.settings import WAREHOUSE_WRITER_POOL
from orchestration.resources import DuckDBWarehouse

SAMPLE_SITES = pl.DataFrame(
    {
        "smo_id": ["SMO-A", "SMO-A", "SMO-A", "SMO-B", "SMO-B"],
        "study_id": ["STUDY-1", "STUDY-1", "STUDY-2", "STUDY-1", "STUDY-2"],
        "site_id": ["S001", "S002", "S003", "S101", "S102"],
        "site_name": [
            "Hospital Central",
            "Clinica Norte",
            "University Clinic",
            "City Hospital",
            "Research Institute",
        ],
        "country": ["ES", "ES", "DE", "JP", "US"],
        "status": ["ENROLLING", "ACTIVATED", "PLANNED", "ENROLLING", "CLOSED"],
    }
)


@dg.asset(
    key=["raw", "sites"],
    group_name="raw",
    pool=WAREHOUSE_WRITER_POOL,
    kinds={"duckdb", "python"},
    description="Site rosters (scaffold sample until the delivery ingest lands).",
)
def raw_sites(warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    sites = SAMPLE_SITES
    with warehouse.connect() as con:
        con.execute("create schema if not exists raw")
        con.execute("create or replace table raw.sites as select * from sites")
    return dg.MaterializeResult(metadata={"dagster/row_count": sites.height})
