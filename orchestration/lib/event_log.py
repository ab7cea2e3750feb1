"""Dagster's SQLite event log with its connections kept open.

Dagster's `SqliteEventLogStorage` opens a new SQLite connection for every event it stores (a
second one for asset and check events, which it mirrors into the index database), commits it
with a full fsync and closes it again; closing the last connection to a WAL database also
checkpoints it (another fsync). A refresh stores ~1,100 events; on this machine that cost 20-70 ms
an event: most of a quiet week's refresh, and 10-25 s of any other (`make bench`, README
"Performance").

This subclass keeps one open connection per database file (the index and the most recent runs'
files) and commits with SQLite's `synchronous=NORMAL`, the documented setting for WAL databases:
every transaction stays atomic and the files consistent, and a killed process loses nothing; only
an OS crash or power loss can lose the last few events. The files, their schema and migrations,
and readers in other processes (`dagster dev`, the daemon) are Dagster's own and unchanged.
Postgres storage would be the other way out, and needs a server this project does not assume.
"""

from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

#: Run databases kept open besides the index: the running run's and a few recent ones that
#: `dagster dev` or the next run read (a long-lived process must not hold every run's file).
OPEN_RUN_DATABASES = 4


def _wal_normal_sync(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class KeptOpenSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one open connection per database file (see module docstring).

    `base_dir` is where Dagster keeps a home's event log (`history/runs/`), so switching a home
    to this class keeps its history; homes written by `orchestration.instance` name it, and
    without it `$DAGSTER_HOME`'s is used.
    """

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables_found: set[str] = set()
        if base_dir is None:
            if not os.environ.get("DAGSTER_HOME"):
                raise dg.DagsterInvariantViolationError(
                    "KeptOpenSqliteEventLogStorage without a base_dir needs DAGSTER_HOME: write the "
                    "home's dagster.yaml with orchestration.instance.ensure_dagster_home"
                )
            base_dir = os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> dict:
        return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> KeptOpenSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, most recently used last; the oldest run database is closed when
        more than `OPEN_RUN_DATABASES` are open."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,  # creating the tables nests connections
                # used under the storage's lock, from whichever thread holds it
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            event.listen(engine, "connect", _wal_normal_sync)
        self._engines[shard] = engine
        runs = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for old in runs[: max(0, len(runs) - OPEN_RUN_DATABASES)]:
            self._engines.pop(old).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        """Dagster asks before every asset check event whether the index has its table, each
        time with a new engine and connection (0.7 s of a refresh with no new deliveries at
        demo scale). A table, once there, stays: migrations add tables and never drop them, and
        `wipe` empties the index without dropping any."""
        if table_name in self._tables_found:
            return True
        found = super().has_table(table_name)
        if found:
            self._tables_found.add(table_name)
        return found

    def close_connections(self) -> None:
        """Close every kept connection (checkpointing each WAL file)."""
        with self._db_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self.close_connections()  # the files are deleted: no connection may outlive them
        super().wipe()

    def dispose(self) -> None:
        self.close_connections()
        super().dispose()
