"""Sharing the warehouse with other processes: wait for them with backoff, then say who; and
give them a copy to query instead.

DuckDB lets one process write a file, or several read it, never both: any other process that has
the file open (a data engineer's `duckdb -readonly` session, a BI tool pointed at the wrong file)
makes our open fail at once with `Could not set lock on file ... (PID n)`. Our own runs never
collide (the `duckdb_writer` pool gives one step at a time the file), so a conflict is always a
foreign process. Instead of failing the step, `open_warehouse` retries with exponential backoff
(capped), logs who holds the file each time, and after `SMO_WAREHOUSE_LOCK_WAIT_SECONDS` raises
`WarehouseLocked`, whose message names the holder and the safe way to query.

That safe way is `write_snapshot`: after every run a byte copy of the checkpointed warehouse
replaces `warehouse.snapshot.duckdb` atomically (about 0.05 s for the 27 MB demo warehouse; a
logical `COPY FROM DATABASE` took 0.9 s), so sessions on it never touch the live file.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 15.0
_LOCK_ERROR = "Could not set lock on file"
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")

#: What engineers should open instead of the live warehouse (README "Querying the warehouse").
SAFE_QUERY_HINT = (
    "Query the read-only copy refreshed after every run ({snapshot}) or the published marts "
    "(SMO_PUBLISH_DIR/oversight.duckdb) instead of the live warehouse."
)


@dataclass(frozen=True)
class LockHolder:
    """The process DuckDB names as holding the file, as far as it can be identified."""

    pid: int | None
    program: str
    command: str | None  # /proc/<pid>/cmdline when readable (same host, same user or root)

    def describe(self) -> str:
        if self.pid is None:
            return "another process"
        what = self.command or self.program
        return f"process {self.pid} ({what if len(what) <= 120 else what[:117] + '...'})"


class WarehouseLocked(Exception):
    """The warehouse stayed locked by another process for longer than the configured bound."""

    def __init__(self, path: Path, holder: LockHolder, waited: float, snapshot: Path):
        self.path, self.holder, self.waited = path, holder, waited
        super().__init__(
            f"{path} is held by {holder.describe()}; waited {waited:.0f} s "
            f"(SMO_WAREHOUSE_LOCK_WAIT_SECONDS) for it to close the file.\n"
            f"Close that session (or stop the process) and run again.\n"
            + SAFE_QUERY_HINT.format(snapshot=snapshot)
        )


def is_lock_conflict(message: str) -> bool:
    return _LOCK_ERROR in message


def lock_holder(message: str) -> LockHolder:
    """The holder named in DuckDB's lock error; its command line from /proc when readable."""
    found = _HOLDER.search(message)
    if not found:
        return LockHolder(None, "unknown", None)
    pid = int(found["pid"])
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        command = None
    return LockHolder(pid, found["program"], command[:300] if command else None)


def wait_for_unlock(
    attempt: Callable[[], object],
    path: Path,
    wait_seconds: float,
    log: Callable[[str], None],
    snapshot: Path,
):
    """Call `attempt` until it does not fail on DuckDB's file lock; give up after `wait_seconds`.

    `attempt` opens the file (or runs something that does); any other error propagates.
    """
    start = time.monotonic()
    delay = FIRST_RETRY_SECONDS
    while True:
        try:
            return attempt()
        except duckdb.Error as exc:
            if not is_lock_conflict(str(exc)):
                raise
            message = str(exc)
        holder = lock_holder(message)
        waited = time.monotonic() - start
        if waited + 1e-9 >= wait_seconds:
            raise WarehouseLocked(path, holder, waited, snapshot)
        delay = min(delay, wait_seconds - waited)
        log(
            f"waiting for {holder.describe()} that holds {path}; retry in {delay:.1f}s "
            f"(waited {waited:.0f} of {wait_seconds:.0f} s)"
        )
        time.sleep(delay)
        delay = min(delay * 2, MAX_RETRY_SECONDS)


def open_warehouse(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float,
    snapshot: Path,
    log: Callable[[str], None] = print,
) -> duckdb.DuckDBPyConnection:
    """`duckdb.connect`, waiting up to `wait_seconds` for a foreign process holding the file."""
    return wait_for_unlock(
        lambda: duckdb.connect(str(path), read_only=read_only), path, wait_seconds, log, snapshot
    )


def write_snapshot(con: duckdb.DuckDBPyConnection, warehouse: Path, snapshot: Path) -> int:
    """Replace `snapshot` with a copy of `warehouse`, atomically; return its size in bytes.

    `con` is a write connection on `warehouse`: after CHECKPOINT the file holds everything (no
    WAL) and, while it stays open and idle, no other process can change it. Readers of the old
    snapshot keep their file; new sessions open the new one. The copy is made read-only.
    """
    con.execute("checkpoint")
    temp = snapshot.with_name(f".{snapshot.name}.{os.getpid()}.tmp")
    try:
        with open(warehouse, "rb") as source, open(temp, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
            target.flush()
            os.fsync(target.fileno())
        temp.chmod(0o444)
        os.replace(temp, snapshot)
    finally:
        temp.unlink(missing_ok=True)
    folder = os.open(snapshot.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return snapshot.stat().st_size
