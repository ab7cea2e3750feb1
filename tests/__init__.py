"""The whole suite (`make test`). `tests/ingest`, `tests/registry`, `tests/synthetic` test the
libraries directly; the top-level `test_*.py` files marked `integration` run the real Dagster job
(dbt and the gates included) into temporary DuckDB files (fixtures in conftest.py). Tests that
need `../shared/data` skip with a reason when it is absent."""
