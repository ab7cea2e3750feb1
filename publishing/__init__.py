"""What leaves the warehouse: the atomic BI publish (`bi_database`: read-only DuckDB file and
Parquet per mart) and the weekly oversight report (HTML with static SVG charts).

Reads only the marts or the published file. May import `core`; never Dagster or `orchestration`.
"""
