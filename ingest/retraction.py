"""Pulling a loaded delivery after the fact: the warehouse gate found that its rows fail a
blocking check that the delivery gate could not see (a cross-feed or cross-week rule).

The delivery becomes REJECTED exactly as if the gate had refused it: its rows leave
`raw.<feed>`, the SMO's previous snapshot becomes current again, the archived file moves to
quarantine beside a report naming the failed checks, and ops.gate_results records why. The
other SMOs' deliveries are untouched, so the refresh can rebuild and publish for them. The
feeds of one SDTM delivery set were loaded together and are pulled together.

Like every ledger change that moves a file, the rows are committed first with `file_state`
PENDING and their new `stored_path`, then the file (or set folder) moves and the rows are marked
DONE; a kill in between is finished by the next inbox batch (`ingest.inbox.recover_pending`).
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb

from core.crash_points import crash_point
from core.gate_results import record_gate_results
from expectations.feeds import FEEDS
from ingest.gate_result import GateResult, Problem
from ingest.warehouse import ALL_STUDIES, ensure_schema, mark_file_done

#: Rule id of a check that failed in the warehouse (dbt test or model) on a delivery's rows.
WAREHOUSE_RULE = "warehouse.check_failed"


@dataclass(frozen=True)
class FailedCheck:
    """A blocking warehouse check that failed on a delivery's rows."""

    check_name: str
    model: str
    failing_rows: int | None
    message: str
    example: str | None = None


@dataclass(frozen=True)
class Pulled:
    delivery_id: int
    smo_id: str
    feed: str
    file_name: str
    report_path: Path
    restored_delivery_ids: tuple[int, ...]
    checks: tuple[FailedCheck, ...]
    #: The other feeds of the same SDTM delivery set, pulled with it.
    set_delivery_ids: tuple[int, ...] = ()


def pull_delivery(
    con: duckdb.DuckDBPyConnection,
    delivery_id: int,
    checks: list[FailedCheck],
    *,
    quarantine: Path,
    run_id: str | None = None,
) -> Pulled:
    """Reject one loaded delivery after the fact and make the SMO's previous snapshot current."""
    ensure_schema(con)  # a warehouse older than the ledger's file_state column
    (smo_id, feed, study_id, studies, file_name, sha256, size, delivery_date, rows, profile,
     stored) = con.execute(
        """
        select smo_id, feed, study_id, studies, file_name, sha256, size_bytes, delivery_date,
               row_count, profile_version, stored_path
        from ops.deliveries where delivery_id = ?
        """,
        [delivery_id],
    ).fetchone()  # fmt: skip
    stored_path = Path(stored) if stored else None
    target = quarantine / smo_id / (stored_path.name if stored_path else f"{delivery_id:06d}")
    result = GateResult(
        path=Path(file_name),
        smo_id=smo_id,
        profile_version=profile,
        sha256=sha256,
        size_bytes=size,
        feed=feed,
        study_id=study_id,
        delivery_date=delivery_date,
        studies=list(studies or []),
        row_count=rows,
    )
    checks = list({(c.check_name, c.model): c for c in checks}.values())  # each check once
    for check in checks:
        result.add(
            Problem(
                WAREHOUSE_RULE,
                f"{check.check_name} on {check.model} failed"
                + (f" ({check.failing_rows} failing rows)" if check.failing_rows else "")
                + f": {check.message}",
                column=None,
                value=check.example,
            )
        )
    siblings = _set_siblings(con, delivery_id, smo_id, stored)
    extra = {"pulled_with_it": [{"delivery_id": i, "feed": f} for i, f in siblings]}
    from ingest.rejection_report import write_reports  # pandera: only when a delivery is pulled

    _, md_path = write_reports(result, target, extra=extra if siblings else None)
    con.execute("begin transaction")
    try:
        con.execute(f"delete from raw.{feed} where _delivery_id = ?", [delivery_id])
        con.execute(
            """
            update ops.deliveries
            set status = 'REJECTED', error_count = ?, report_path = ?, stored_path = ?,
                superseded_by = null, file_state = 'PENDING'
            where delivery_id = ?
            """,
            [len(checks), str(md_path), str(target), delivery_id],
        )
        restored = _restore_previous(con, delivery_id, smo_id, feed)
        for sibling_id, sibling_feed in siblings:
            con.execute(f"delete from raw.{sibling_feed} where _delivery_id = ?", [sibling_id])
            con.execute(
                """
                update ops.deliveries
                set status = 'REJECTED', error_count = 0, report_path = ?, stored_path = ?,
                    superseded_by = null, file_state = 'PENDING'
                where delivery_id = ?
                """,
                [str(md_path), str(target), sibling_id],
            )
            restored += _restore_previous(con, sibling_id, smo_id, sibling_feed)
        record_gate_results(
            con,
            [
                {
                    "run_id": run_id,
                    "gate": "warehouse",
                    "target": f"{smo_id}/{file_name}",
                    "check_name": WAREHOUSE_RULE,
                    "success": False,
                    "observed_value": check.failing_rows,
                    "delivery_id": delivery_id,
                    "details": {
                        "check": check.check_name,
                        "model": check.model,
                        "message": check.message,
                        "examples": [{"row": None, "value": check.example}],
                        "pulled_after_load": True,
                    },
                }
                for check in checks
            ]
            + [
                {
                    "run_id": run_id,
                    "gate": "warehouse",
                    "target": f"{smo_id}/{file_name}",
                    "check_name": WAREHOUSE_RULE,
                    "success": False,
                    "observed_value": 0,
                    "delivery_id": sibling_id,
                    "details": {
                        "check": f"pulled with delivery {delivery_id} ({feed}) of its SDTM set",
                        "model": None,
                        "message": "the set was loaded whole and is pulled whole",
                        "examples": [],
                        "pulled_after_load": True,
                    },
                }
                for sibling_id, _ in siblings
            ],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    crash_point("pull_after_record")
    if stored_path is not None and stored_path.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(stored_path, target)
        for done_id in (delivery_id, *(i for i, _ in siblings)):
            mark_file_done(con, done_id)  # else the next batch marks it LOST
    return Pulled(delivery_id, smo_id, feed, file_name, md_path, tuple(restored), tuple(checks),
                  tuple(i for i, _ in siblings))  # fmt: skip


def _set_siblings(
    con: duckdb.DuckDBPyConnection, delivery_id: int, smo_id: str, stored: str | None
) -> list[tuple[int, str]]:
    """The other feeds of the same SDTM delivery set, which share its stored folder: a set was
    loaded whole and is pulled whole (an SMO file's stored path is its own)."""
    if not stored:
        return []
    return con.execute(
        """
        select delivery_id, feed from ops.deliveries
        where smo_id = ? and stored_path = ? and delivery_id <> ?
          and status in ('ACCEPTED', 'SUPERSEDED')
        order by delivery_id
        """,
        [smo_id, stored, delivery_id],
    ).fetchall()


def _restore_previous(
    con: duckdb.DuckDBPyConnection, delivery_id: int, smo_id: str, feed: str
) -> list[int]:
    """Point every study the pulled delivery was current for at the newest delivery still
    standing (ACCEPTED or SUPERSEDED), which becomes ACCEPTED again."""
    studies = [
        s
        for (s,) in con.execute(
            "select study_id from ops.current_deliveries where delivery_id = ?", [delivery_id]
        ).fetchall()
    ]
    con.execute("delete from ops.current_deliveries where delivery_id = ?", [delivery_id])
    restored = set()
    for study in studies:
        covers = (
            "true"
            if not FEEDS[feed].per_study or study == ALL_STUDIES
            else "list_contains(studies, ?)"
        )
        params = [smo_id, feed] + ([] if covers == "true" else [study])
        row = con.execute(
            f"""
            select delivery_id, delivery_date from ops.deliveries
            where smo_id = ? and feed = ? and status in ('ACCEPTED', 'SUPERSEDED') and {covers}
            order by delivery_date desc, received_at desc, delivery_id desc
            limit 1
            """,
            params,
        ).fetchone()
        if row is None:
            continue  # the study had no earlier snapshot: it has none now
        con.execute(
            "insert or replace into ops.current_deliveries values (?, ?, ?, ?, ?)",
            [smo_id, feed, study, row[0], row[1]],
        )
        restored.add(row[0])
    if restored:
        con.execute(
            """
            update ops.deliveries set status = 'ACCEPTED', superseded_by = null
            where delivery_id in (select unnest(?::bigint[]))
            """,
            [sorted(restored)],
        )
    return sorted(restored)


def current_since(con: duckdb.DuckDBPyConnection, since: dt.datetime | None) -> list[int]:
    """Deliveries that became current after `since` (all current ones when None): the only
    ones a newly failing warehouse check can be blamed on."""
    where = "" if since is None else "and d.processed_at > ?"
    return [
        r[0]
        for r in con.execute(
            f"""
            select distinct d.delivery_id from ops.deliveries d
            join ops.current_deliveries c using (delivery_id)
            where d.status = 'ACCEPTED' {where}
            """,
            [] if since is None else [since],
        ).fetchall()
    ]
