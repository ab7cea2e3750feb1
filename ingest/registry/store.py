"""Keeping the registry in the warehouse: every record version, then flat tables.

`registry.raw_studies` keeps each distinct version of a record (by content hash) with the
registry's data timestamp and the fetch time, so a change to a registry record is never lost.
`registry.fetches` logs each run (what was asked, since when, requests and retries). The flat
tables (`registry.studies`, `locations`, `conditions`, `interventions`, `sponsors`) are rebuilt
from the newest version of every record.

`fetch_registry` decides what to ask: the portfolio's own studies (NCT ids from the current site
rosters and configuration) and a peer cohort per (condition, phase) of the portfolio. Runs after
the first are incremental: only records updated since the previous data timestamp are fetched,
except ids never fetched before, which are fetched in full.

Faults are isolated per study: a request that fails (its study lookup, its peer-cohort search)
is recorded in `FetchSummary.failures` (which studies, which request, the error) and in
`registry.fetches.failures`, the studies' previously stored records and cohorts stay in use, and
the next run asks for them again in full. Only when every request fails is the fetch a failure
(`RegistryError`: nothing stored, the snapshot goes stale).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb

from core.catalog import table_exists
from ingest.registry.client import RegistryError, RegistrySource
from ingest.registry.queries import incremental_params, peer_cohort_params
from ingest.warehouse import current_rows_sql

DDL = """
create schema if not exists registry;
create table if not exists registry.raw_studies (
    nct_id                varchar not null,
    record_hash           varchar not null,
    role                  varchar not null,  -- portfolio | peer
    last_update_post_date varchar,
    data_timestamp        varchar not null,  -- the registry's data version when fetched
    fetched_at            timestamp not null,
    source                varchar not null,  -- live base URL or replay directory
    record                json not null,
    primary key (nct_id, record_hash)
);
create table if not exists registry.fetches (
    fetched_at          timestamp not null,
    data_timestamp      varchar not null,
    since               varchar,            -- previous data timestamp (null = full fetch)
    source              varchar not null,
    portfolio_requested integer not null,
    records_received    integer not null,
    new_versions        integer not null,
    requests            integer not null,
    retries             integer not null
);
alter table registry.fetches add column if not exists failures json;
create table if not exists registry.fetch_failures (
    failed_at   timestamp not null,
    source      varchar not null,
    error       varchar not null,
    run_id      varchar,
    resolved_at timestamp           -- set by the next fetch that succeeds
);
"""

FLAT_TABLES = ("studies", "locations", "conditions", "interventions", "sponsors")


@dataclass
class FetchSummary:
    data_timestamp: str
    since: str | None
    portfolio_ids: list[str]
    missing_ids: list[str] = field(default_factory=list)
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (role, record)
    peer_searches: int = 0
    count_mismatches: list[str] = field(default_factory=list)
    #: requests that failed: {"studies": [nct ids], "what", "request", "error", "cohort"}
    failures: list[dict[str, Any]] = field(default_factory=list)
    requests_answered: int = 0

    def fail(self, studies, what: str, exc: RegistryError, cohort=None) -> None:
        self.failures.append(
            {
                "studies": sorted(studies),
                "what": what,
                "request": exc.request,
                "error": exc.problem,
                "cohort": list(cohort) if cohort else None,
            }
        )

    def describe_failures(self) -> str:
        return "; ".join(
            f"{', '.join(f['studies']) or 'no study'}: {f['what']} failed "
            f"({f['request'] or 'no request'}: {f['error']})"
            for f in self.failures
        )


def _nct_id(record: dict[str, Any]) -> str | None:
    return ((record.get("protocolSection") or {}).get("identificationModule") or {}).get("nctId")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def record_failure(
    con: duckdb.DuckDBPyConnection, *, source_name: str, error: str, run_id: str | None
) -> None:
    """A fetch that failed: nothing of it is stored, the previous snapshot stays (stale)."""
    con.execute(
        "insert into registry.fetch_failures (failed_at, source, error, run_id) values (?, ?, ?, ?)",
        [dt.datetime.now(dt.UTC).replace(tzinfo=None), source_name, error, run_id],
    )


def resolve_failures(con: duckdb.DuckDBPyConnection) -> None:
    """A fetch succeeded (or found the registry unchanged): the snapshot is current again."""
    con.execute(
        "update registry.fetch_failures set resolved_at = ? where resolved_at is null",
        [dt.datetime.now(dt.UTC).replace(tzinfo=None)],
    )


def stale_reason(con: duckdb.DuckDBPyConnection) -> str | None:
    """Why the stored snapshot is stale (the oldest unresolved failed fetch), None if current."""
    if not table_exists(con, "registry", "fetch_failures"):
        return None
    rows = con.execute(
        """
        select failed_at, error, count(*) over () from registry.fetch_failures
        where resolved_at is null order by failed_at limit 1
        """
    ).fetchall()
    if not rows:
        return None
    failed_at, error, failures = rows[0]
    return (
        f"registry fetch failing since {failed_at:%Y-%m-%d %H:%M} UTC ({failures} failed "
        f"fetch(es)): {error}"
    )


def previous_data_timestamp(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute("select max(data_timestamp) from registry.fetches").fetchone()
    return row[0]


def previous_failures(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The failed requests of the last stored fetch: asked again, in full, by the next one."""
    row = con.execute(
        "select failures::varchar from registry.fetches order by fetched_at desc limit 1"
    ).fetchone()
    return json.loads(row[0]) if row and row[0] else []


_LATEST = """
    select nct_id, role, record::varchar from registry.raw_studies
    qualify row_number() over (
        partition by nct_id order by fetched_at desc, last_update_post_date desc nulls last
    ) = 1
"""


def latest_records(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, dict[str, Any]]]:
    """The newest stored version of every record: nct_id -> (role, record)."""
    return {n: (role, json.loads(text)) for n, role, text in con.execute(_LATEST).fetchall()}


def roster_nct_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    """NCT ids on the current site rosters (empty before the first delivery)."""
    if not table_exists(con, "raw", "sites"):
        return []
    rows = con.execute(
        f"select distinct nct_id from ({current_rows_sql('sites')}) where nct_id is not null"
    ).fetchall()
    return sorted(r[0].strip().upper() for r in rows if r[0] and r[0].strip())


def fetch_registry(
    source: RegistrySource,
    portfolio_ids: Sequence[str],
    *,
    since: str | None,
    stored: dict[str, dict[str, Any]],
    peer_start_within_years: int,
    peer_cohort_max: int,
    today: dt.date | None = None,
    retry: Sequence[dict[str, Any]] = (),
) -> FetchSummary:
    """Ask the registry for the portfolio's studies and their peer cohorts (see module doc).

    `retry`: the previous fetch's failures; their studies and cohorts are fetched in full."""
    stamp = source.data_timestamp()  # read first: updates during the fetch are caught next time
    summary = FetchSummary(
        data_timestamp=stamp, since=since, portfolio_ids=sorted(set(portfolio_ids))
    )
    retry_ids = {i for f in retry if not f.get("cohort") for i in f.get("studies") or []}
    retry_cohorts = {tuple(f["cohort"]) for f in retry if f.get("cohort")}
    new_ids = [
        i for i in summary.portfolio_ids if i not in stored or since is None or i in retry_ids
    ]
    old_ids = [i for i in summary.portfolio_ids if i not in new_ids]
    own: dict[str, dict[str, Any]] = {}
    if new_ids:
        try:
            fetched = source.get_studies(new_ids)
            summary.requests_answered += 1
            summary.missing_ids = list(fetched.missing_ids)
            own.update({_nct_id(r): r for r in fetched.studies})
        except RegistryError as exc:
            if len(new_ids) == 1:
                summary.fail(new_ids, "study lookup", exc)
            else:  # one bad record or batch must not cost the others: ask one by one
                _fetch_one_by_one(source, new_ids, own, summary)
    if old_ids:
        params = incremental_params({"filter.ids": ",".join(old_ids)}, since)
        try:
            own.update({_nct_id(r): r for r in source.search_studies(params).studies})
            summary.requests_answered += 1
        except RegistryError as exc:
            summary.fail(old_ids, "update check of the portfolio's studies", exc)
    summary.records += [("portfolio", r) for r in own.values()]

    current = {i: stored[i] for i in summary.portfolio_ids if i in stored} | own
    for (condition, phase), studies in _cohorts(current).items():
        params = peer_cohort_params(
            condition, phase, start_within_years=peer_start_within_years, today=today
        )
        full = since is None or (condition, phase) in retry_cohorts
        summary.peer_searches += 1
        try:
            result = source.search_studies(
                params if full else incremental_params(params, since),
                max_studies=peer_cohort_max,
            )
        except RegistryError as exc:
            summary.fail(studies, f"peer-cohort search {condition} / {phase}", exc,
                         (condition, phase))  # fmt: skip
            continue
        summary.requests_answered += 1
        if result.count_mismatch:
            summary.count_mismatches.append(f"{condition} / {phase}: {result.count_mismatch}")
        summary.records += [
            ("peer", r) for r in result.studies if _nct_id(r) not in set(summary.portfolio_ids)
        ]
    if summary.failures and not summary.requests_answered:
        raise RegistryError(f"every registry request failed: {summary.describe_failures()}")
    return summary


def _fetch_one_by_one(
    source: RegistrySource,
    nct_ids: Sequence[str],
    own: dict[str, dict[str, Any]],
    summary: FetchSummary,
) -> None:
    for nct_id in nct_ids:
        try:
            own[nct_id] = source.get_study(nct_id)
            summary.requests_answered += 1
        except RegistryError as exc:
            if exc.status == 404:
                summary.requests_answered += 1
                summary.missing_ids.append(nct_id)
            else:
                summary.fail([nct_id], "study lookup", exc)


def _cohorts(records: dict[str, dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(first condition, last phase) of each portfolio study -> the studies that share it."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for nct_id, record in sorted(records.items()):
        protocol = record.get("protocolSection") or {}
        conditions = (protocol.get("conditionsModule") or {}).get("conditions") or []
        phases = (protocol.get("designModule") or {}).get("phases") or []
        phases = [p for p in phases if p.startswith("PHASE")]
        if conditions and phases:
            pairs.setdefault((conditions[0], phases[-1]), []).append(nct_id)
    return dict(sorted(pairs.items()))


def store(
    con: duckdb.DuckDBPyConnection,
    summary: FetchSummary,
    *,
    source_name: str,
    requests: int,
    retries: int,
) -> int:
    """Insert new record versions and the fetch log in one transaction; returns new versions."""
    fetched_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = []
    for role, record in summary.records:
        text = json.dumps(record, sort_keys=True, ensure_ascii=False)
        status = (record.get("protocolSection") or {}).get("statusModule") or {}
        rows.append(
            {
                "nct_id": _nct_id(record),
                "record_hash": hashlib.sha256(text.encode()).hexdigest(),
                "role": role,
                "last_update_post_date": (status.get("lastUpdatePostDateStruct") or {}).get("date"),
                "data_timestamp": summary.data_timestamp,
                "fetched_at": fetched_at,
                "source": source_name,
                "record": text,
            }
        )
    con.execute("begin transaction")
    try:
        before = con.execute("select count(*) from registry.raw_studies").fetchall()[0][0]
        if rows:
            import polars as pl  # only when records are stored: not with the definitions

            frame = pl.DataFrame(rows).unique(["nct_id", "record_hash"], keep="first")
            con.register("_registry_rows", frame.to_arrow())
            con.execute(
                """
                insert into registry.raw_studies
                select nct_id, record_hash, role, last_update_post_date, data_timestamp,
                       fetched_at, source, record::json
                from _registry_rows
                on conflict do nothing
                """
            )
            con.unregister("_registry_rows")
        new_versions = (
            con.execute("select count(*) from registry.raw_studies").fetchone()[0] - before
        )
        con.execute(
            "insert into registry.fetches (fetched_at, data_timestamp, since, source, "
            "portfolio_requested, records_received, new_versions, requests, retries, failures) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [fetched_at, summary.data_timestamp, summary.since, source_name,
             len(summary.portfolio_ids), len(rows), new_versions, requests, retries,
             json.dumps(summary.failures) if summary.failures else None],
        )  # fmt: skip
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return new_versions


def rebuild_flat_tables(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Flatten the newest version of every record into registry.<table>; returns row counts."""
    import polars as pl  # flattening: only when the tables are rebuilt, not with the definitions

    from ingest.registry.flatten import flatten_studies

    latest = latest_records(con)
    roles = {nct_id: role for nct_id, (role, _) in latest.items()}
    tables = flatten_studies(record for _, record in latest.values()).tables()
    tables["studies"] = tables["studies"].with_columns(
        pl.col("nct_id").replace_strict(roles, default=None, return_dtype=pl.Utf8).alias("role")
    )
    counts = {}
    for name in FLAT_TABLES:
        frame = tables[name]
        con.register("_flat", frame.to_arrow())
        con.execute(f"create or replace table registry.{name} as select * from _flat")
        con.unregister("_flat")
        counts[name] = frame.height
    return counts


def flat_table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of the flat tables as they stand (0 for one not built yet)."""
    built = {
        t for (t,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'registry'").fetchall()
    }  # fmt: skip
    return {
        name: con.execute(f"select count(*) from registry.{name}").fetchall()[0][0]
        if name in built
        else 0
        for name in FLAT_TABLES
    }
