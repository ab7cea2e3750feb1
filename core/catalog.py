"""What a DuckDB database holds: the one probe every layer uses before reading a table that a
fresh or partial warehouse may not have yet."""

from __future__ import annotations

import duckdb


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )
