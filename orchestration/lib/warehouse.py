"""The DuckDB warehouse as Dagster sees it: the resource every writing asset uses and the pool
that serialises them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from core.settings import load_settings

#: Dagster concurrency pool that every asset writing the DuckDB warehouse joins. DuckDB allows a
#: single writer process, so the pool's limit is 1 (see orchestration/dagster.yaml).
WAREHOUSE_WRITER_POOL = "duckdb_writer"


class DuckDBWarehouse(dg.ConfigurableResource):
    """The DuckDB file the pipeline writes. Only assets in the writer pool open it for writing.

    BI tools never open this file: they read the separately published copy.
    """

    path: str = Field(
        default="",
        description="DuckDB file; empty means SMO_WAREHOUSE_PATH, read when the run starts.",
    )

    @property
    def resolved_path(self) -> Path:
        return Path(self.path).resolve() if self.path else load_settings().warehouse_path

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            self.resolved_path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(self.resolved_path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def exported_to_dbt(self) -> Iterator[None]:
        """Make dbt (a subprocess reading `SMO_WAREHOUSE_PATH` in profiles.yml) write this file.

        The resource is the one source of truth for the path at run time; the environment is
        restored afterwards so one process can run against several warehouses (tests do).
        """
        previous = os.environ.get("SMO_WAREHOUSE_PATH")
        os.environ["SMO_WAREHOUSE_PATH"] = str(self.resolved_path)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("SMO_WAREHOUSE_PATH", None)
            else:
                os.environ["SMO_WAREHOUSE_PATH"] = previous
