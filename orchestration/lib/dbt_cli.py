"""`smo-dbt`: dbt's own command line, with the warehouse file's path and DuckDB's settings
(its memory limit) left out of dbt's check of whether its saved parse state still holds.

dbt re-parses the whole project (~8 s) when any connection setting differs from the one the
saved state was made with, the DuckDB file's path included, although the path changes nothing
parsed: every test and benchmark warehouse lives at its own path, so each of their builds paid a
full parse; so would every build with another `SMO_DBT_MEMORY_LIMIT`. The database name (the
file's stem) that relation names are built from stays in the check. Everything else is dbt's
`dbt` command unchanged; `dbt` by hand still works, re-parsing when the path differs.
"""

from __future__ import annotations

import sys

from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.cli.main import cli

_connection_keys = DuckDBCredentials._connection_keys


#: Connection settings that change nothing parsed.
NOT_PARSED = ("path", "settings")


def _keys_parsed(self: DuckDBCredentials) -> tuple[str, ...]:
    return tuple(key for key in _connection_keys(self) if key not in NOT_PARSED)


def main() -> None:
    DuckDBCredentials._connection_keys = _keys_parsed
    sys.exit(cli())
