"""Warehouse side of ingest: raw tables, the delivery ledger and which snapshot is current.

A delivery is a full snapshot of one feed for the studies it covers. Every accepted delivery's
rows are kept in `raw.<feed>` (history); `ops.current_deliveries` names, per (SMO, feed,
study), the delivery whose rows are current: the one with the latest delivery date (ties go to
the later arrival). Loading one delivery is one transaction, so a crash leaves nothing of it.

A ledger row is also the intent to move its file: it is committed with `file_state` PENDING
before the file is touched and marked DONE once the file is where `stored_path` says
(`ingest.inbox.recover_pending` finishes or settles the rows a kill left PENDING).
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb

from core.gate_results import ensure_gate_results, record_gate_results
from expectations.feeds import FEEDS, Feed
from ingest.gate_result import GateResult

#: Study key used in `ops.current_deliveries` for feeds that are not per study (staffing).
ALL_STUDIES = "*"

SQL_TYPES = {
    "str": "VARCHAR",
    "date": "DATE",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
}

LEDGER_DDL = """
create table if not exists ops.deliveries (
    delivery_id     bigint primary key,
    smo_id          varchar not null,
    feed            varchar,
    study_id        varchar,        -- the file's study; null when it covers several ('*' for the sponsor's list)
    studies         varchar[],      -- every study the snapshot covers
    file_name       varchar not null,
    sha256          varchar not null,
    size_bytes      bigint not null,
    delivery_date   date,
    received_at     timestamp not null,
    processed_at    timestamp not null,
    row_count       bigint not null,
    status          varchar not null, -- ACCEPTED, REJECTED, DUPLICATE, SUPERSEDED
    error_count     bigint not null,
    report_path     varchar,
    stored_path     varchar,        -- where the file is kept (archive or quarantine)
    profile_version varchar not null,
    duplicate_of    bigint,
    superseded_by   bigint,
    file_state      varchar default 'DONE' -- PENDING (row committed, file not yet moved), DONE, LOST
);
create table if not exists ops.current_deliveries (
    smo_id        varchar not null,
    feed          varchar not null,
    study_id      varchar not null,
    delivery_id   bigint not null,
    delivery_date date not null,
    primary key (smo_id, feed, study_id)
);
"""


def raw_table_ddl(feed: Feed) -> str:
    columns = [f"{c.name} {SQL_TYPES[c.dtype]}" for c in feed.columns]
    columns += [f"{c} VARCHAR" for c in feed.precision_columns]
    columns += ["_delivery_id BIGINT NOT NULL", "_source_row INTEGER NOT NULL"]
    return f"create table if not exists raw.{feed.name} (\n    " + ",\n    ".join(columns) + "\n)"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute("create schema if not exists ops")
    con.execute("create sequence if not exists ops.delivery_id_seq start 1")
    con.execute(LEDGER_DDL)
    # Added since warehouses were created: their rows were written after their file was moved.
    con.execute(
        "alter table ops.deliveries add column if not exists file_state varchar default 'DONE'"
    )
    ensure_gate_results(con)
    for feed in FEEDS.values():
        con.execute(raw_table_ddl(feed))
        # Columns added since a warehouse was created (all optional, so null in older rows).
        added = [(c.name, SQL_TYPES[c.dtype]) for c in feed.columns if not c.required]
        added += [(c, "VARCHAR") for c in feed.precision_columns]
        for column, sql_type in added:
            con.execute(f"alter table raw.{feed.name} add column if not exists {column} {sql_type}")


def delivery_gate_rows(
    delivery_id: int, result: GateResult, run_id: str | None, details: dict | None = None
) -> list[dict]:
    """The delivery gate's verdict on one file: one row for the contract, one per failed rule.

    `details` adds to the contract row's details (e.g. an unsafe name's bytes in hex).
    """
    target = f"{result.smo_id}/{result.path.name}"
    rows = [
        {
            "run_id": run_id,
            "gate": "delivery",
            "target": target,
            "check_name": "contract",
            "success": result.accepted,
            "observed_value": result.error_count,
            "details": {
                "feed": result.feed,
                "rows": result.row_count,
                "sha256": result.sha256,
                **(details or {}),
            },
            "delivery_id": delivery_id,
        }
    ]
    for total in result.totals:
        examples = [
            {"row": p.row, "value": p.value}
            for p in result.problems
            if (p.rule, p.column) == (total.rule, total.column)
        ][:5]
        rows.append(
            {
                "run_id": run_id,
                "gate": "delivery",
                "target": target,
                "check_name": total.rule,
                "success": False,
                "observed_value": total.count,
                "details": {"column": total.column, "examples": examples},
                "delivery_id": delivery_id,
            }
        )
    return rows


def next_delivery_id(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("select nextval('ops.delivery_id_seq')").fetchone()[0]


def current_rows_sql(feed: str) -> str:
    """SQL for the current rows of a feed: those of the delivery current per (SMO, study)."""
    study_match = (
        "c.study_id = r.study_id" if FEEDS[feed].per_study else f"c.study_id = '{ALL_STUDIES}'"
    )
    return f"""
        select r.* exclude (_source_row)
        from raw.{feed} r
        join ops.current_deliveries c
          on c.delivery_id = r._delivery_id and c.feed = '{feed}' and {study_match}
    """


def current_roster(con: duckdb.DuckDBPyConnection, smo_id: str) -> frozenset[str]:
    rows = con.execute(
        f"select study_id, site_id from ({current_rows_sql('sites')}) where smo_id = ?", [smo_id]
    ).fetchall()
    from expectations.contracts import roster_keys  # pandera: only when deliveries are checked

    return roster_keys([r[0] for r in rows], [r[1] for r in rows])


def loaded_deliveries_of(con: duckdb.DuckDBPyConnection, smo_id: str) -> dict[tuple[str, str], int]:
    """(file name, sha256) -> the delivery that already loaded this very file (same name, same
    bytes), for every file the SMO's deliveries loaded; read once per SMO and batch.

    A new week's file with unchanged content is a new snapshot, not a duplicate: its name
    (and delivery date) differ, and it must become current.
    """
    rows = con.execute(
        """
        select file_name, sha256, min(delivery_id) from ops.deliveries
        where smo_id = ? and status in ('ACCEPTED', 'SUPERSEDED')
        group by file_name, sha256
        """,
        [smo_id],
    ).fetchall()
    return {(name, sha256): delivery_id for name, sha256, delivery_id in rows}


def loaded_set_deliveries(
    con: duckdb.DuckDBPyConnection, smo_id: str, set_name: str, sha256: str
) -> dict[str, int]:
    """Per feed, the delivery that already loaded this SDTM delivery set (same file names,
    same digest of the domain files), if any: the set was sent again."""
    rows = con.execute(
        """
        select feed, min(delivery_id) from ops.deliveries
        where smo_id = ? and file_name = ? and sha256 = ? and feed is not null
          and status in ('ACCEPTED', 'SUPERSEDED')
        group by feed
        """,
        [smo_id, set_name, sha256],
    ).fetchall()
    return dict(rows)


def _ledger_row(
    delivery_id: int,
    result: GateResult,
    *,
    status: str,
    received_at: dt.datetime,
    processed_at: dt.datetime,
    report_path: str | None,
    stored_path: str | None,
    duplicate_of: int | None = None,
) -> list:
    feed = FEEDS[result.feed] if result.feed else None
    covered = result.studies if feed and feed.per_study else []
    # The sponsor's list covers every study at once: its ledger rows say so ('*').
    study_id = ALL_STUDIES if feed and feed.sender == "sponsor" else result.study_id
    return [
        delivery_id,
        result.smo_id,
        result.feed,
        study_id,
        covered,
        result.path.name,
        result.sha256,
        result.size_bytes,
        result.delivery_date,
        received_at,
        processed_at,
        result.row_count,
        status,
        result.error_count,
        report_path,
        stored_path,
        result.profile_version,
        duplicate_of,
        None,
        "PENDING",  # the file is moved after the row is committed, then marked DONE
    ]


def record(
    con: duckdb.DuckDBPyConnection,
    delivery_id: int,
    result: GateResult,
    gate_rows: list[dict] | None = None,
    **kwargs,
) -> None:
    """Ledger row (and gate rows) for a delivery that loads no data (REJECTED or DUPLICATE), in
    one transaction, PENDING until its file is moved (`mark_file_done`)."""
    record_together(con, [(delivery_id, result, gate_rows, kwargs)])


def record_together(
    con: duckdb.DuckDBPyConnection, records: list[tuple[int, GateResult, list[dict] | None, dict]]
) -> None:
    """Several such ledger rows (delivery id, result, gate rows, `record` keywords) in one
    transaction: the per-feed DUPLICATE rows of one SDTM delivery set."""
    con.execute("begin transaction")
    try:
        for delivery_id, result, gate_rows, kwargs in records:
            row = _ledger_row(delivery_id, result, **kwargs)
            con.execute(f"insert into ops.deliveries values ({', '.join('?' * len(row))})", row)
            record_gate_results(con, gate_rows or [])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def load_accepted(
    con: duckdb.DuckDBPyConnection,
    delivery_id: int,
    result: GateResult,
    *,
    received_at: dt.datetime,
    processed_at: dt.datetime,
    stored_path: str,
    gate_rows: list[dict] | None = None,
) -> str:
    """Insert the rows, the ledger row, the gate's verdict and the new current pointers in one
    transaction (the ledger row PENDING until the file is moved: `mark_file_done`).

    Returns the delivery's status: ACCEPTED, or SUPERSEDED when a newer snapshot of every
    study it covers is already current (an old file arriving late is kept as history).
    """
    return load_accepted_together(
        con,
        [(delivery_id, result, gate_rows)],
        received_at=received_at,
        processed_at=processed_at,
        stored_path=stored_path,
    )[0]


def load_accepted_together(
    con: duckdb.DuckDBPyConnection,
    loads: list[tuple[int, GateResult, list[dict] | None]],
    *,
    received_at: dt.datetime,
    processed_at: dt.datetime,
    stored_path: str,
) -> list[str]:
    """Load several accepted deliveries (delivery id, result, gate rows) in one transaction:
    the canonical feeds of one SDTM delivery set load all together or not at all."""
    con.execute("begin transaction")
    try:
        statuses = [
            _insert_accepted(con, delivery_id, result, received_at=received_at,
                             processed_at=processed_at, stored_path=stored_path,
                             gate_rows=gate_rows)
            for delivery_id, result, gate_rows in loads
        ]  # fmt: skip
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return statuses


def _insert_accepted(
    con: duckdb.DuckDBPyConnection,
    delivery_id: int,
    result: GateResult,
    *,
    received_at: dt.datetime,
    processed_at: dt.datetime,
    stored_path: str,
    gate_rows: list[dict] | None,
) -> str:
    assert result.accepted and result.frame is not None and result.feed is not None
    feed = FEEDS[result.feed]
    studies = result.studies if feed.per_study else [ALL_STUDIES]
    import polars as pl  # only when rows load: the definitions load does not need it

    rows = result.frame.with_columns(pl.lit(delivery_id, dtype=pl.Int64).alias("_delivery_id"))
    con.register("_delivery_rows", rows.to_arrow())
    con.execute(f"insert into raw.{feed.name} by name select * from _delivery_rows")
    con.unregister("_delivery_rows")
    row = _ledger_row(
        delivery_id,
        result,
        status="ACCEPTED",
        received_at=received_at,
        processed_at=processed_at,
        report_path=None,
        stored_path=stored_path,
    )
    con.execute(f"insert into ops.deliveries values ({', '.join('?' * len(row))})", row)
    record_gate_results(con, gate_rows or [])
    became_current = _advance_current(con, delivery_id, result, studies)
    if not became_current:
        con.execute(
            "update ops.deliveries set status = 'SUPERSEDED' where delivery_id = ?",
            [delivery_id],
        )
    return "ACCEPTED" if became_current else "SUPERSEDED"


def mark_file_done(
    con: duckdb.DuckDBPyConnection, delivery_id: int, *, sha256: str | None = None
) -> None:
    """The delivery's file is where its row says (or removed, when not kept). `sha256` sets the
    hash of an entry hashed only once it was in quarantine."""
    con.execute(
        "update ops.deliveries set file_state = 'DONE', sha256 = coalesce(?, sha256) "
        "where delivery_id = ?",
        [sha256, delivery_id],
    )


def mark_file_lost(con: duckdb.DuckDBPyConnection, delivery_id: int) -> None:
    """Neither the stored file nor the inbox original exists any more."""
    con.execute(
        "update ops.deliveries set file_state = 'LOST' where delivery_id = ?", [delivery_id]
    )


def pending_files(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Deliveries whose file move a kill interrupted: (delivery_id, smo_id, file_name, sha256,
    status, stored_path), oldest first."""
    return con.execute(
        """
        select delivery_id, smo_id, file_name, sha256, status, stored_path
        from ops.deliveries where file_state = 'PENDING' order by delivery_id
        """
    ).fetchall()


def redaction_of(con: duckdb.DuckDBPyConnection, delivery_id: int) -> dict | None:
    """What the delivery gate recorded about the delivery's redacted copy, if it has one."""
    row = con.execute(
        "select details from ops.gate_results "
        "where delivery_id = ? and check_name = 'identifiers.stripped' limit 1",
        [delivery_id],
    ).fetchone()
    return json.loads(row[0]) if row else None


def redactions_of(con: duckdb.DuckDBPyConnection, delivery_id: int) -> list[dict]:
    """Every redacted copy the gate recorded for the delivery (one per file of an SDTM set)."""
    rows = con.execute(
        "select details from ops.gate_results "
        "where delivery_id = ? and check_name = 'identifiers.stripped'",
        [delivery_id],
    ).fetchall()
    return [json.loads(r[0]) for r in rows]


def set_members(con: duckdb.DuckDBPyConnection, delivery_id: int) -> dict | None:
    """The SDTM set a ledger row stands for (`files`: file, domain, sha256 of each domain file;
    `not_kept`: files whose bytes are not kept), as its delivery gate recorded it; a duplicate's
    from the set it repeats (same names, same bytes). None for a single file."""
    row = con.execute(
        """
        select g.details from ops.gate_results g
        where g.gate = 'delivery' and g.check_name = 'contract' and g.delivery_id = (
            select coalesce(duplicate_of, delivery_id) from ops.deliveries where delivery_id = ?)
        limit 1
        """,
        [delivery_id],
    ).fetchone()
    details = json.loads(row[0]) if row and row[0] else {}
    return details.get("sdtm_set") if isinstance(details, dict) else None


def _advance_current(
    con: duckdb.DuckDBPyConnection, delivery_id: int, result: GateResult, studies: list[str]
) -> bool:
    """Point each covered study at this delivery when it is the newest; retire what it replaces.

    Set-based: a roster file covers every study of an SMO, and three statements per study made
    this a tenth of the load time at the `large` scale.
    """
    current = {
        study: (previous_id, previous_date)
        for study, previous_id, previous_date in con.execute(
            """
            select study_id, delivery_id, delivery_date from ops.current_deliveries
            where smo_id = ? and feed = ?
            """,
            [result.smo_id, result.feed],
        ).fetchall()
    }
    newer = [s for s in studies if s not in current or current[s][1] <= result.delivery_date]
    if not newer:
        return False
    con.execute(
        "insert or replace into ops.current_deliveries select ?, ?, unnest(?::varchar[]), ?, ?",
        [result.smo_id, result.feed, newer, delivery_id, result.delivery_date],
    )
    replaced = sorted({current[s][0] for s in newer if s in current} - {delivery_id})
    if replaced:
        # A replaced delivery is superseded once it is current for no study at all.
        con.execute(
            """
            update ops.deliveries set status = 'SUPERSEDED', superseded_by = ?
            where delivery_id in (select unnest(?::bigint[])) and status = 'ACCEPTED'
              and delivery_id not in (select delivery_id from ops.current_deliveries)
            """,
            [delivery_id, replaced],
        )
    return True
