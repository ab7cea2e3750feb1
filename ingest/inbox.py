"""Process the SMO inbox: `inbox/<smo_id>/<file>` -> gate -> warehouse, archive or quarantine.

Files still being written are left alone: names ending in .part/.tmp (or hidden), and files
modified less than `settle_seconds` ago. Each file is handled on its own, so one SMO's bad
file never stops another file or SMO. Processed files leave the inbox: accepted and duplicate
files go to `archive/<smo_id>/` (the stored deliveries a past week can be rebuilt from),
rejected ones to `quarantine/<smo_id>/` beside their reports.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core.gate_results import record_gate_results
from expectations.contracts import Plausibility
from expectations.feeds import FEED_LOAD_ORDER
from ingest import warehouse
from ingest.gate import GateResult, check_delivery, file_sha256
from ingest.plausibility import plausibility, roster_study_starts
from ingest.profiles import Profile, ProfileError, load_profile
from ingest.rejection_report import write_reports

NOT_READY_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", "~")


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    smo_id: str
    feed: str | None
    file_name: str
    status: str  # ACCEPTED, REJECTED, DUPLICATE, SUPERSEDED
    rows: int
    error_count: int
    stored_path: Path
    report_path: Path | None = None
    first_problem: str | None = None


@dataclass
class BatchSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    #: Files left in the inbox, with why (no profile, broken profile).
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


def is_ready(path: Path, now: float, settle_seconds: float) -> bool:
    name = path.name
    if not path.is_file() or name.startswith(".") or name.lower().endswith(NOT_READY_SUFFIXES):
        return False
    return now - path.stat().st_mtime >= settle_seconds


def ready_files(
    inbox: Path, settle_seconds: float, now: float | None = None
) -> dict[str, list[Path]]:
    """Ready files per SMO folder, in name order."""
    now = time.time() if now is None else now
    found: dict[str, list[Path]] = {}
    if not inbox.is_dir():
        return found
    for smo_dir in sorted(p for p in inbox.iterdir() if p.is_dir()):
        files = sorted(p for p in smo_dir.iterdir() if is_ready(p, now, settle_seconds))
        if files:
            found[smo_dir.name] = files
    return found


def _load_order(profile: Profile, path: Path) -> tuple:
    """Rosters before the feeds that reference them; older snapshots before newer ones."""
    matched = profile.feed_for(path.name)
    if matched is None:
        return (dt.date.max, len(FEED_LOAD_ORDER), path.name)
    feed_profile, fields = matched
    try:
        delivery_date = profile.parse_delivery_date(feed_profile, fields) or dt.date.max
    except ValueError:
        delivery_date = dt.date.max
    return (delivery_date, FEED_LOAD_ORDER.index(feed_profile.feed), path.name)


def _stored_path(path: Path, folder: Path, delivery_id: int) -> Path:
    """Where a processed file is kept: prefixed with its delivery id, so names never clash."""
    return folder / f"{delivery_id:06d}__{path.name}"


def _move(path: Path, folder: Path, delivery_id: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = _stored_path(path, folder, delivery_id)
    shutil.move(path, target)
    return target


def process_inbox(
    con: duckdb.DuckDBPyConnection,
    *,
    inbox: Path,
    archive: Path,
    quarantine: Path,
    profiles_dir: Path,
    settle_seconds: float = 0.0,
    now: float | None = None,
    run_id: str | None = None,
) -> BatchSummary:
    warehouse.ensure_schema(con)
    summary = BatchSummary()
    for smo_id, files in ready_files(inbox, settle_seconds, now).items():
        profile_path = profiles_dir / f"{smo_id}.yaml"
        try:
            profile = load_profile(profile_path)
        except ProfileError as exc:
            summary.skipped += [(f, str(exc)) for f in files]
            continue
        if profile.smo_id != smo_id:
            problem = (
                f"{profile_path}: smo_id is '{profile.smo_id}' but the inbox folder is '{smo_id}'"
            )
            summary.skipped += [(f, problem) for f in files]
            continue
        roster = warehouse.current_roster(con, smo_id)
        context = plausibility(study_starts=roster_study_starts(con, smo_id))
        for path in sorted(files, key=lambda p: _load_order(profile, p)):
            outcome = process_file(
                con,
                path,
                profile,
                roster,
                archive=archive,
                quarantine=quarantine,
                run_id=run_id,
                plausibility=context,
            )
            summary.outcomes.append(outcome)
            if outcome.feed == "sites" and outcome.status == "ACCEPTED":
                roster = warehouse.current_roster(con, smo_id)
                context = plausibility(study_starts=roster_study_starts(con, smo_id))
    return summary


def process_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    profile: Profile,
    roster: frozenset[str],
    *,
    archive: Path,
    quarantine: Path,
    run_id: str | None = None,
    plausibility: Plausibility | None = None,
) -> Outcome:
    received_at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).replace(tzinfo=None)
    processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sha256 = file_sha256(path)
    delivery_id = warehouse.next_delivery_id(con)
    smo_archive, smo_quarantine = archive / profile.smo_id, quarantine / profile.smo_id

    duplicate_of = warehouse.loaded_delivery_for(con, profile.smo_id, path.name, sha256)
    if duplicate_of is not None:
        result = _duplicate_result(path, profile, sha256)
        stored = _move(path, smo_archive, delivery_id)
        warehouse.record(
            con,
            delivery_id,
            result,
            status="DUPLICATE",
            received_at=received_at,
            processed_at=processed_at,
            report_path=None,
            stored_path=str(stored),
            duplicate_of=duplicate_of,
        )
        return Outcome(
            delivery_id, profile.smo_id, result.feed, path.name, "DUPLICATE", 0, 0, stored
        )

    result = check_delivery(
        path,
        profile,
        received_at=received_at,
        roster=roster,
        sha256=sha256,
        plausibility=plausibility,
    )
    gate_rows = warehouse.delivery_gate_rows(delivery_id, result, run_id)
    if result.accepted:
        stored = _stored_path(path, smo_archive, delivery_id)  # named in the ledger before the move
        status = warehouse.load_accepted(
            con,
            delivery_id,
            result,
            received_at=received_at,
            processed_at=processed_at,
            stored_path=str(stored),
            gate_rows=gate_rows,
        )
        _move(path, smo_archive, delivery_id)
        return Outcome(
            delivery_id, profile.smo_id, result.feed, path.name, status, result.row_count, 0, stored
        )

    stem = _stored_path(path, smo_quarantine, delivery_id)
    _, md_path = write_reports(result, stem)
    stored = _move(path, smo_quarantine, delivery_id)
    warehouse.record(
        con,
        delivery_id,
        result,
        status="REJECTED",
        received_at=received_at,
        processed_at=processed_at,
        report_path=str(md_path),
        stored_path=str(stored),
    )
    record_gate_results(con, gate_rows)
    first = result.problems[0] if result.problems else None
    return Outcome(
        delivery_id,
        profile.smo_id,
        result.feed,
        path.name,
        "REJECTED",
        result.row_count,
        result.error_count,
        stored,
        md_path,
        first.message if first else None,
    )


def _duplicate_result(path: Path, profile: Profile, sha256: str) -> GateResult:
    result = GateResult(
        path=path,
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256=sha256,
        size_bytes=path.stat().st_size,
    )
    matched = profile.feed_for(path.name)
    if matched is not None:
        result.feed = matched[0].feed
        result.study_id = matched[1].get("study_id")
        result.delivery_date = profile.parse_delivery_date(*matched)
    return result
