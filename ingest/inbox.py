"""Process the SMO inbox: `inbox/<smo_id>/<file>` -> gate -> warehouse, archive or quarantine.

Entries are listed and classified by `ingest.inbox_entries` (never following a link): entries
still being written are left alone (.part/.tmp, hidden, or changed less than `settle_seconds`
ago); a regular file with a clean name goes through the delivery gate; an unsafe name
(`file.name_unsafe`) or anything that is not a regular file (`file.not_regular`) is renamed into
quarantine unopened under its escaped name, with a REJECTED ledger row and a report.

Each file is handled on its own: one SMO's bad file never stops another file or SMO, and an
unforeseen error on one file becomes that file's rejection (`file.unreadable`, quoting the
error; its load is one transaction, so nothing of it stays). Processed files leave the inbox:
accepted and duplicate files go to `archive/<smo_id>/` (the stored deliveries a past week can be
rebuilt from), rejected ones to `quarantine/<smo_id>/` beside their reports. Files are moved by
rename, so the archive holds the delivered bytes; for a feed whose profile strips identifier
columns it holds a redacted copy instead (`ingest.redact`) and never the original.

For an SMO whose profile has an `sdtm:` section, the domain files of one CDISC SDTM delivery
are grouped (`ingest.inbox_sdtm`) and handled as one unit (`process_sdtm_set`): checked
together, loaded in one transaction (one ledger row per canonical feed), recorded as a
duplicate, or rejected and quarantined whole; an incomplete set waits in the inbox.

A delivery's ledger row and its file move are one recoverable unit. Everything that can be
rewritten (reports, the redacted copy and its `.redaction.json`) is written beside the target
first; then the ledger row (with its gate rows, and for an accepted file its rows) is committed
with `file_state` PENDING and the target `stored_path`: the intent. Then the file is moved and
the row marked DONE. `recover_pending` runs before every batch and settles what a kill left:
- a PENDING row is finished: a stored file that is in place is kept (and the inbox original of
  the same SHA-256 removed); an original still in the inbox is moved (its redacted copy put in
  place) and never becomes a DUPLICATE; with neither left the row is marked LOST;
- an SDTM set's rows (one per feed, committed together) are finished the same way: its
  `stored_path` is the set's folder and its domain files (names, SHA-256) are those its contract
  gate row lists (`details.sdtm_set.files`; a duplicate's, those of the set it repeats);
- a delivery pulled after loading (`ingest.retraction`) whose file is still in the archive is
  moved to quarantine;
- a report, sidecar or redacted copy whose delivery id has no ledger row (killed before the
  commit; the file is still in the inbox and is processed again) is deleted.
Each settled delivery gives one line in `BatchSummary.recovered` (and the log). Crash points
(`core.crash_points`): `inbox_before_record`, `inbox_after_record`, `inbox_after_move`
(`pull_after_record` in `ingest.retraction`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core.crash_points import crash_point
from expectations.contracts import Plausibility
from expectations.feeds import FEED_LOAD_ORDER, SPONSOR_ID
from ingest import warehouse
from ingest.gate import GateResult, Problem, RuleTotal, check_delivery
from ingest.inbox_entries import (
    InboxEntry,
    NotRegularFile,
    classify,
    escaped_name,
    fit_name,
    link_target,
    move_entry,
    open_regular,
    scan_inbox,
)
from ingest.inbox_entries import ready_files as ready_files  # where callers found it
from ingest.inbox_sdtm import SdtmGrouping, SdtmSet, folder_names, group_sdtm
from ingest.plausibility import action_targets, plausibility, roster_study_starts
from ingest.profiles import FeedProfile, Profile, ProfileError, load_profile
from ingest.redact import RedactionError, redact_delivery
from ingest.rejection_report import write_reports
from ingest.sdtm import DOMAINS, SdtmDelivery, check_sdtm_delivery, storage_profile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    smo_id: str
    feed: str | None
    file_name: str
    status: str  # ACCEPTED, REJECTED, DUPLICATE, SUPERSEDED
    rows: int
    error_count: int
    stored_path: Path | None
    report_path: Path | None = None
    first_problem: str | None = None


@dataclass
class BatchSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    #: Entries left in the inbox, with why (no profile, broken profile, not an SMO folder, ...).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: What `recover_pending` did about deliveries a killed run left half done, one line each.
    recovered: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


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
    """Where a processed entry is kept: prefixed with its delivery id, so names never clash."""
    return folder / f"{delivery_id:06d}__{fit_name(escaped_name(path.name))}"


@dataclass(frozen=True)
class _Snapshot:
    """What was hashed: a file whose identity, size or mtime changes was rewritten meanwhile."""

    sha256: str
    size: int
    mtime_ns: int
    dev: int
    ino: int

    @property
    def received_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.mtime_ns / 1e9, dt.UTC).replace(tzinfo=None)


def _snapshot(path: Path) -> _Snapshot:
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        digest = hashlib.sha256()
        with os.fdopen(fd, "rb", closefd=False) as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    finally:
        os.close(fd)
    return _Snapshot(digest.hexdigest(), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _check_unchanged(path: Path, snap: _Snapshot) -> None:
    st = os.lstat(path)
    same = stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
        snap.dev,
        snap.ino,
        snap.size,
        snap.mtime_ns,
    )
    if not same:
        raise RuntimeError(
            "the file was replaced or rewritten while it was being checked; deliver it again "
            "once it is complete"
        )


@dataclass
class _Storage:
    """Where an entry goes, and (for a feed that strips identifiers) its redacted copy."""

    target: Path
    temp: Path | None = None  # the redacted copy, beside the target until the entry is done
    redaction: dict | None = None  # what the report, sidecar and gate row record
    keep: bool = True  # False: the bytes are not kept (identifiers could not be removed)
    note: str | None = None


def _prepare_storage(
    path: Path,
    target: Path,
    feed_profile: FeedProfile | None,
    snap: _Snapshot | None,
    *,
    found: list[str] | None,
) -> _Storage:
    """Decide how the entry is kept. For a feed whose profile strips identifier columns the
    original is kept only when the gate read the file and none of them was in it (`found` is
    the gate's `stripped_columns`, None when the gate did not read the header and the file
    must be probed by the redactor itself); else a redacted copy is written, and when that
    cannot be done the bytes are not kept at all."""
    storage = _Storage(target)
    strip = feed_profile.strip_identifiers if feed_profile is not None else frozenset()
    if not strip or found == []:
        return storage
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = _redacting(target)
    temp.unlink(missing_ok=True)  # never there: delivery ids are not reused
    try:
        removed = redact_delivery(path, temp, feed_profile.file, strip)
        if found is not None and sorted(removed) != sorted(found):
            raise RedactionError(f"the copy lacks {removed}, the gate removed {found}")
    except (RedactionError, OSError) as exc:
        temp.unlink(missing_ok=True)
        storage.keep = False
        storage.note = (
            "The file is not kept: its profile strips identifier columns "
            f"({', '.join(sorted(strip))}) and no redacted copy could be written ({exc}). The "
            "SMO must deliver it again."
        )
        return storage
    if not removed:
        return storage
    storage.temp = temp
    storage.redaction = {
        "redacted": True,
        "columns_removed": removed,
        "original_sha256": snap.sha256 if snap else None,
        "original_size_bytes": snap.size if snap else None,
        "stored_sha256": hashlib.sha256(temp.read_bytes()).hexdigest(),
        "stored_size_bytes": temp.stat().st_size,
        "format": feed_profile.file.type,
    }
    _write_sidecar(target, storage.redaction)
    return storage


def _redacting(target: Path) -> Path:
    return target.with_name(f".{target.name}.redacting")


def _sidecar(target: Path) -> Path:
    return target.with_name(target.name + ".redaction.json")


def _write_sidecar(target: Path, redaction: dict) -> None:
    """The redacted copy's record, beside it (written before the copy is put in place)."""
    _sidecar(target).write_text(json.dumps(redaction, indent=2, ensure_ascii=False) + "\n")


def _discard(storage: _Storage) -> None:
    """Nothing was recorded: remove the redacted copy and its record again."""
    if storage.temp is not None:
        storage.temp.unlink(missing_ok=True)
        _sidecar(storage.target).unlink(missing_ok=True)


def _unread_storage(target: Path, feed_profile: FeedProfile | None) -> _Storage:
    """A file the gate could not read: with identifiers to strip, they cannot be ruled out."""
    if feed_profile is None or not feed_profile.strip_identifiers:
        return _Storage(target)
    strip = ", ".join(sorted(feed_profile.strip_identifiers))
    return _Storage(
        target,
        keep=False,
        note=(
            f"The file is not kept: its profile strips identifier columns ({strip}) and the file "
            "could not be read, so they cannot be ruled out. The SMO must deliver it again."
        ),
    )


def _finish_storage(path: Path, storage: _Storage) -> Path | None:
    """Put the entry (or its redacted copy) in place and take it out of the inbox."""
    if storage.temp is not None:
        os.replace(storage.temp, storage.target)
        os.unlink(path)
        return storage.target
    if not storage.keep:
        os.unlink(path)
        return None
    return move_entry(path, storage.target)


def _redaction_gate_row(delivery_id: int, result: GateResult, storage: _Storage, run_id) -> list:
    if storage.redaction is None:
        return []
    return [
        {
            "run_id": run_id,
            "gate": "delivery",
            "target": f"{result.smo_id}/{result.path.name}",
            "check_name": "identifiers.stripped",
            "success": True,
            "observed_value": len(storage.redaction["columns_removed"]),
            "details": storage.redaction,
            "delivery_id": delivery_id,
        }
    ]


class RecordedNotStored(Exception):
    """The delivery's ledger row is committed (PENDING) but its file could not be moved."""

    def __init__(self, outcome: Outcome, cause: BaseException):
        self.outcome, self.cause = outcome, cause
        super().__init__(str(cause))


def _store(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    storage: _Storage,
    outcome: Outcome,
    *,
    hash_stored: bool = False,
) -> Outcome:
    """The ledger row is committed (PENDING): move the entry, then mark the row DONE.

    `hash_stored`: the entry was not opened in the inbox; hash it where it is now kept.
    """
    crash_point("inbox_after_record")
    try:
        stored = _finish_storage(path, storage)
    except Exception as exc:  # noqa: BLE001 - recorded; only the move failed
        raise RecordedNotStored(outcome, exc) from exc
    crash_point("inbox_after_move")
    sha256 = _stored_sha256(stored) if hash_stored and stored is not None else None
    warehouse.mark_file_done(con, outcome.delivery_id, sha256=sha256)
    return outcome


def _stored_sha256(stored: Path) -> str | None:
    try:
        return _snapshot(stored).sha256
    except (OSError, NotRegularFile):
        return None


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
    held = recover_pending(
        con, summary, inbox=inbox, archive=archive, quarantine=quarantine, profiles_dir=profiles_dir
    )
    scan = scan_inbox(inbox, settle_seconds, now)
    summary.skipped += scan.skipped
    # The sponsor's actions go last: they may target sites on rosters accepted in this batch.
    for smo_id, entries in sorted(scan.entries.items(), key=lambda kv: kv[0] == SPONSOR_ID):
        entries = [e for e in entries if e.path not in held]  # recorded, move still failing
        if not entries:
            continue
        profile_path = profiles_dir / f"{smo_id}.yaml"
        try:
            profile = load_profile(profile_path)
        except (ValueError, OSError) as exc:  # ProfileError, or an unreadable profile file
            why = str(exc) if isinstance(exc, ProfileError) else f"{profile_path}: {exc}"
            summary.skipped += [(f"{smo_id}/{e.name}", why) for e in entries]
            continue
        if profile.smo_id != smo_id:
            problem = (
                f"{profile_path}: smo_id is '{profile.smo_id}' but the inbox folder is '{smo_id}'"
            )
            summary.skipped += [(f"{smo_id}/{e.name}", problem) for e in entries]
            continue
        for entry in (e for e in entries if not e.deliverable):
            _run_step(summary, entry, quarantine_entry, con, entry, profile, quarantine, run_id)
        roster = warehouse.current_roster(con, smo_id)
        context = plausibility(study_starts=roster_study_starts(con, smo_id))
        if smo_id == SPONSOR_ID:
            context = dataclasses.replace(context, targets=action_targets(con))
        files = sorted(
            (e for e in entries if e.deliverable), key=lambda e: _load_order(profile, e.path)
        )
        sdtm = _group_sdtm(files, entries, profile, inbox / smo_id)
        if sdtm is not None:
            files = [e for e in files if profile.feed_for(e.name) or e in sdtm.other]
        # Names are unique in a folder, so no file of this batch can repeat another one of it:
        # what the SMO loaded before the batch is all a duplicate can repeat.
        loaded = warehouse.loaded_deliveries_of(con, smo_id)
        for entry in files:
            outcome = _run_step(
                summary, entry, _process_or_reject, con, entry, profile, roster,
                archive=archive, quarantine=quarantine, run_id=run_id, plausibility=context,
                loaded=loaded,
            )  # fmt: skip
            if outcome and outcome.feed == "sites" and outcome.status == "ACCEPTED":
                roster = warehouse.current_roster(con, smo_id)
                context = plausibility(study_starts=roster_study_starts(con, smo_id))
        if sdtm is not None:
            _process_sdtm_grouping(
                summary, con, sdtm, profile, roster, context,
                archive=archive, quarantine=quarantine, run_id=run_id,
            )  # fmt: skip
    return summary


def recover_pending(
    con: duckdb.DuckDBPyConnection,
    summary: BatchSummary,
    *,
    inbox: Path,
    archive: Path,
    quarantine: Path,
    profiles_dir: Path,
) -> set[Path]:
    """Settle what a killed run left half done, before anything new is processed.

    Returns the inbox entries of deliveries still PENDING (their move failed again): they are
    left alone, reported in `summary.skipped`, and never recorded a second time.
    """
    held: set[Path] = set()
    for row in warehouse.pending_files(con):
        delivery_id, smo_id, file_name, _, status, _ = row
        where = f"{smo_id}/{file_name}"
        try:
            said = _finish_pending(con, inbox, archive, profiles_dir, *row)
        except Exception as exc:  # noqa: BLE001 - stays PENDING; retried by the next run
            held.update(_pending_sources(con, inbox / smo_id, delivery_id, file_name, row[3]))
            why = (
                f"delivery {delivery_id} ({status}) is recorded but its file could not be "
                f"moved ({_error_text(exc)}); the next run tries again"
            )
            summary.skipped.append((where, why))
            log.warning("%s: %s", where, why)
            continue
        line = f"delivery {delivery_id} {status} {where} (left half done by a killed run): {said}"
        summary.recovered.append(line)
        log.warning(line)
    try:
        removed = _remove_unrecorded(con, (archive, quarantine))
    except OSError as exc:  # never blocks the batch: tried again by the next run
        why = f"leftovers of killed runs not checked: {_error_text(exc)}"
        summary.skipped.append((f"{archive}, {quarantine}", why))
        log.warning(why)
        removed = []
    for line in removed:
        summary.recovered.append(line)
        log.warning(line)
    return held


def _finish_pending(
    con, inbox: Path, archive: Path, profiles_dir: Path, delivery_id, smo_id, file_name, sha256,
    status, stored_path,
) -> str:  # fmt: skip
    """Finish one PENDING delivery's move, or mark it LOST; say what was done."""
    target = Path(stored_path) if stored_path else None
    sdtm_set = warehouse.set_members(con, delivery_id)
    if sdtm_set is not None:  # an SDTM delivery set: `target` is its folder
        said = _finish_set_members(con, inbox / smo_id, target, sdtm_set, delivery_id,
                                   profiles_dir / f"{smo_id}.yaml")  # fmt: skip
        if said is not None:
            warehouse.mark_file_done(con, delivery_id)
            return said
        source, redaction = None, None  # no file of it in the inbox: in place, pulled, or lost
    else:
        source = _inbox_original(inbox / smo_id, file_name, sha256)
        redaction = warehouse.redaction_of(con, delivery_id) if target is not None else None
    if target is None:  # its bytes are not kept
        if source is not None:
            os.unlink(source)
        said = "the original removed from the inbox (not kept)" if source else "nothing to do"
    elif os.path.lexists(target):
        if source is None:
            said = f"already in {target}"
        elif not sha256:  # matched by name only: could be a new delivery, processed as such
            source = None
            said = f"already in {target}"
        elif redaction is None and _stored_sha256(target) != sha256:
            os.unlink(target)  # a copy across file systems cut short
            move_entry(source, target)
            said = f"copied again to {target}"
        else:
            os.unlink(source)
            said = f"already in {target}; the original removed from the inbox"
    elif source is None and (pulled := _archived_as(archive / smo_id, target)) is not None:
        move_entry(pulled, target)  # a delivery pulled after loading (ingest.retraction)
        said = f"moved from the archive to {target}"
    elif redaction is not None and (_redacting(target).exists() or source is not None):
        said = f"redacted copy put in place at {target}"
        if not _redacting(target).exists():  # removed meanwhile: written again
            redaction = _redact_again(source, target, profiles_dir / f"{smo_id}.yaml")
            said = f"redacted copy written again at {target}"
        os.replace(_redacting(target), target)
        if source is not None:
            os.unlink(source)
    elif redaction is None and source is not None:
        move_entry(source, target)
        said = f"moved to {target}"
    else:
        warehouse.mark_file_lost(con, delivery_id)
        return f"LOST: neither {target} nor the inbox original exists any more"
    if redaction is not None and not _sidecar(target).exists():
        _write_sidecar(target, redaction)
    hashed = None
    if target is not None and not sha256 and redaction is None:
        hashed = _stored_sha256(target)  # an entry hashed only once it is in quarantine
    warehouse.mark_file_done(con, delivery_id, sha256=hashed)
    return said


def _pending_sources(
    con, folder: Path, delivery_id: int, file_name: str, sha256: str | None
) -> list[Path]:  # fmt: skip
    """The inbox entries a PENDING ledger row was recorded for (each domain file of a set)."""
    sdtm_set = warehouse.set_members(con, delivery_id)
    if sdtm_set is None:
        found = [_inbox_original(folder, file_name, sha256)]
    else:
        found = [_inbox_original(folder, m["file"], m["sha256"]) for m in _hashed(sdtm_set)]
    return [p for p in found if p is not None]


def _hashed(sdtm_set: dict) -> list[dict]:
    """The set's domain files that were hashed (one that could not be opened is not matched by
    name alone: a new file of that name is a new delivery)."""
    return [m for m in sdtm_set.get("files", []) if m.get("sha256")]


def _finish_set_members(
    con, folder: Path, target: Path | None, sdtm_set: dict, delivery_id: int, profile_path: Path
) -> str | None:  # fmt: skip
    """Move the domain files of a PENDING SDTM set still in the inbox (same names, same
    SHA-256) into the set's folder (redacted copies where recorded); None when none is left."""
    found = [
        (m["file"], path)
        for m in _hashed(sdtm_set)
        if (path := _inbox_original(folder, m["file"], m["sha256"])) is not None
    ]
    if not found:
        return None
    not_kept = set(sdtm_set.get("not_kept", []))
    redactions = {r.get("original_sha256"): r for r in warehouse.redactions_of(con, delivery_id)}
    for name, source in found:
        stored = None if target is None else target / fit_name(name)
        if stored is None or name in not_kept:
            os.unlink(source)  # its bytes are not kept
        elif os.path.lexists(stored):
            os.unlink(source)  # moved before the kill (or its redacted copy put in place)
        elif _redacting(stored).exists():
            os.replace(_redacting(stored), stored)
            os.unlink(source)
        elif (snap := _snapshot(source)).sha256 in redactions:  # copy removed: written again
            spec = load_profile(profile_path).sdtm
            if spec is None:
                raise RedactionError(f"{profile_path} no longer has an sdtm section")
            storage = _prepare_storage(source, stored, storage_profile(spec, source), snap,
                                       found=None)  # fmt: skip
            if storage.temp is None:
                raise RedactionError(storage.note or "none of the identifier columns is in it")
            _finish_storage(source, storage)
        else:
            move_entry(source, stored)
    names = ", ".join(name for name, _ in found)
    if target is None:
        return f"{len(found)} file(s) of the set removed from the inbox ({names}; not kept)"
    return f"{len(found)} file(s) of the set moved to {target} ({names})"


def _archived_as(folder: Path, target: Path) -> Path | None:
    """The archived file of a delivery pulled to `target` in quarantine (same stored name)."""
    archived = folder / target.name
    return archived if archived != target and os.path.lexists(archived) else None


def _redact_again(source: Path, target: Path, profile_path: Path) -> dict:
    """The redacted copy of a PENDING delivery, from its original still in the inbox."""
    matched = load_profile(profile_path).feed_for(source.name)
    if matched is None:
        raise RedactionError(f"{profile_path} no longer names the feed of {source.name}")
    storage = _prepare_storage(source, target, matched[0], _snapshot(source), found=None)
    if storage.temp is None:
        raise RedactionError(storage.note or "none of the identifier columns is in the file")
    return storage.redaction


def _inbox_original(folder: Path, file_name: str, sha256: str) -> Path | None:
    """The inbox entry a ledger row was recorded for: its escaped name, and (when the row has
    one) the same SHA-256; a different file of that name is a new delivery."""
    raw_folder = os.fsencode(folder)
    try:
        names = os.listdir(raw_folder)
    except OSError:
        return None
    for raw in names:
        if escaped_name(raw) != file_name:
            continue
        path = Path(os.fsdecode(os.path.join(raw_folder, raw)))
        if not sha256:
            return path
        try:
            return path if _snapshot(path).sha256 == sha256 else None
        except (OSError, NotRegularFile):
            return None
    return None


_STORED_NAME = re.compile(r"^\.?(\d+)__")
#: What is written beside a target before its ledger row commits; safe to delete without it.
_BEFORE_RECORD = (".report.json", ".report.md", ".redaction.json", ".redacting")


def _remove_unrecorded(con: duckdb.DuckDBPyConnection, roots: tuple[Path, ...]) -> list[str]:
    """Reports and redacted copies of a delivery id that has no ledger row and whose stored file
    does not exist: a kill before the row committed (the file itself is still in the inbox and
    is processed again). Stored files are never deleted (an archive older than the warehouse
    keeps everything)."""
    by_id: dict[int, list[Path]] = {}
    for root in roots:
        for folder in _subfolders(root):
            names = set(os.listdir(folder))
            for name in names:
                match = _STORED_NAME.match(name)
                if match and _only_before_record(folder / name):  # an SDTM set's folder
                    by_id.setdefault(int(match[1]), []).append(folder / name)
                    continue
                if not match or not name.endswith(_BEFORE_RECORD):
                    continue
                stored = name.lstrip(".").removesuffix(".redacting")
                for suffix in (".report.json", ".report.md", ".redaction.json"):
                    stored = stored.removesuffix(suffix)
                if stored not in names:
                    by_id.setdefault(int(match[1]), []).append(folder / name)
    if not by_id:
        return []
    recorded = {
        r[0]
        for r in con.execute(
            "select delivery_id from ops.deliveries "
            "where delivery_id in (select unnest(?::bigint[]))",
            [sorted(by_id)],
        ).fetchall()
    }
    lines = []
    for delivery_id in sorted(set(by_id) - recorded):
        for path in by_id[delivery_id]:
            if path.is_dir() and not path.is_symlink():
                for inside in path.iterdir():
                    inside.unlink(missing_ok=True)
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        names = ", ".join(sorted(p.name for p in by_id[delivery_id]))
        lines.append(f"removed {names}: delivery {delivery_id} was never recorded (killed run)")
    return lines


def _only_before_record(path: Path) -> bool:
    """A stored SDTM set's folder that holds only redacted copies and their records (written
    before the set's rows commit), no domain file."""
    if path.is_symlink() or not path.is_dir():
        return False
    inside = os.listdir(path)
    return bool(inside) and all(n.endswith((".redaction.json", ".redacting")) for n in inside)


def _subfolders(root: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def _run_step(summary: BatchSummary, entry: InboxEntry, step, *args, **kwargs) -> Outcome | None:
    """Run one entry's step; whatever happens, the batch goes on."""
    where = f"{entry.smo_id}/{entry.name}"
    try:
        outcome = step(*args, **kwargs)
    except RecordedNotStored as exc:
        summary.skipped.append(
            (
                where,
                f"recorded as delivery {exc.outcome.delivery_id} ({exc.outcome.status}) but not "
                f"moved out of the inbox ({_error_text(exc.cause)}); the next run finishes the move",
            )
        )
        outcome = exc.outcome
    except Exception as exc:  # noqa: BLE001 - recording the rejection itself failed
        summary.skipped.append(
            (where, f"could not be processed or quarantined: {_error_text(exc)}")
        )
        return None
    summary.outcomes.append(outcome)
    return outcome


def _error_text(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else "no detail"
    return f"{type(exc).__name__}: {text}"


def _process_or_reject(
    con, entry: InboxEntry, profile: Profile, roster, *, archive, quarantine, run_id, plausibility,
    loaded,
) -> Outcome:  # fmt: skip
    try:
        return process_file(
            con, entry.path, profile, roster, archive=archive, quarantine=quarantine,
            run_id=run_id, plausibility=plausibility, loaded=loaded,
        )  # fmt: skip
    except RecordedNotStored:
        raise
    except Exception as exc:  # noqa: BLE001 - an unforeseen failure is this file's rejection
        # Loading is one transaction (rolled back on error): nothing of the file is in tables.
        return reject_after_error(con, entry.path, profile, exc, quarantine, run_id)


def quarantine_entry(
    con: duckdb.DuckDBPyConnection,
    entry: InboxEntry,
    profile: Profile,
    quarantine: Path,
    run_id: str | None = None,
) -> Outcome:
    """Move an entry that must not be opened (unsafe name, not a regular file) to quarantine,
    unopened, and record its rejection."""
    delivery_id = warehouse.next_delivery_id(con)
    processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    target = _stored_path(entry.path, quarantine / profile.smo_id, delivery_id)
    result = GateResult(
        path=entry.path.with_name(entry.name),
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256="",  # a file is hashed once in quarantine, where no sender can swap it
        size_bytes=entry.size,
    )
    for problem in entry.problems:
        result.add(problem)
    details = {
        "entry_kind": entry.kind,
        "name_escaped": entry.name,
        "name_bytes_hex": entry.raw_name.hex(),
    }
    if entry.kind == "symbolic link":
        details["link_target"] = link_target(entry.path)  # readlink: never follows it
    _, md_path = write_reports(result, target, extra={"entry": details})
    gate_rows = warehouse.delivery_gate_rows(delivery_id, result, run_id, details=details)
    crash_point("inbox_before_record")
    warehouse.record(
        con,
        delivery_id,
        result,
        status="REJECTED",
        received_at=dt.datetime.fromtimestamp(entry.mtime, dt.UTC).replace(tzinfo=None),
        processed_at=processed_at,
        report_path=str(md_path),
        stored_path=str(target),
        gate_rows=gate_rows,
    )
    outcome = Outcome(
        delivery_id, profile.smo_id, None, entry.name, "REJECTED", 0, result.error_count,
        target, md_path, result.problems[0].message,
    )  # fmt: skip
    return _store(con, entry.path, _Storage(target), outcome, hash_stored=entry.kind == "file")


def reject_after_error(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    profile: Profile,
    error: BaseException,
    quarantine: Path,
    run_id: str | None = None,
) -> Outcome:
    """An unforeseen failure while processing a file: the file is rejected (file.unreadable,
    quoting the error), quarantined, and nothing of it is loaded."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise error from None  # the file is gone: nothing to quarantine
    entry = classify(path, profile.smo_id, st)
    if not entry.deliverable:  # it changed into something that must not be opened
        return quarantine_entry(con, entry, profile, quarantine, run_id)
    delivery_id = warehouse.next_delivery_id(con)
    processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        snap = _snapshot(path)
    except OSError:  # not even readable (permissions): quarantined by rename, unhashed
        snap = _Snapshot("", st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
    matched = profile.feed_for(path.name)
    result = GateResult(
        path=path,
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256=snap.sha256,
        size_bytes=snap.size,
        feed=matched[0].feed if matched else None,
    )
    result.add(
        Problem(
            "file.unreadable",
            f"Processing the file failed unexpectedly ({_error_text(error)}); nothing of it was "
            "loaded. If the file is right, tell the pipeline's maintainers.",
        )
    )
    return _reject(
        con, path, result, matched[0] if matched else None, snap, delivery_id,
        quarantine=quarantine, processed_at=processed_at, run_id=run_id,
    )  # fmt: skip


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
    loaded: Mapping[tuple[str, str], int] | None = None,
) -> Outcome:
    """One file through the gate into the warehouse (or quarantine). `loaded` is
    `warehouse.loaded_deliveries_of` read once for the batch; without it, read here."""
    st = os.lstat(path)
    entry = classify(path, profile.smo_id, st)
    if not entry.deliverable:
        return quarantine_entry(con, entry, profile, quarantine, run_id)
    processed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        snap = _snapshot(path)
    except NotRegularFile:  # swapped for something else since the lstat
        return quarantine_entry(con, classify(path, profile.smo_id, os.lstat(path)), profile,
                                quarantine, run_id)  # fmt: skip
    received_at = snap.received_at
    delivery_id = warehouse.next_delivery_id(con)
    smo_archive = archive / profile.smo_id
    matched = profile.feed_for(path.name)
    feed_profile = matched[0] if matched else None

    if loaded is None:
        loaded = warehouse.loaded_deliveries_of(con, profile.smo_id)
    duplicate_of = loaded.get((path.name, snap.sha256))
    if duplicate_of is not None:
        result = _duplicate_result(path, profile, snap)
        storage = _prepare_storage(
            path, _stored_path(path, smo_archive, delivery_id), feed_profile, snap, found=None
        )
        stored = storage.target if storage.keep else None
        try:
            _check_unchanged(path, snap)
            crash_point("inbox_before_record")
            warehouse.record(
                con,
                delivery_id,
                result,
                status="DUPLICATE",
                received_at=received_at,
                processed_at=processed_at,
                report_path=None,
                stored_path=None if stored is None else str(stored),
                duplicate_of=duplicate_of,
                gate_rows=_redaction_gate_row(delivery_id, result, storage, run_id),
            )
        except BaseException:
            _discard(storage)
            raise
        outcome = Outcome(
            delivery_id, profile.smo_id, result.feed, path.name, "DUPLICATE", 0, 0, stored
        )
        return _store(con, path, storage, outcome)

    result = check_delivery(
        path,
        profile,
        received_at=received_at,
        roster=roster,
        sha256=snap.sha256,
        plausibility=plausibility,
    )
    if not result.accepted:
        return _reject(
            con, path, result, feed_profile, snap, delivery_id,
            quarantine=quarantine, processed_at=processed_at, run_id=run_id,
        )  # fmt: skip

    storage = _prepare_storage(
        path,
        _stored_path(path, smo_archive, delivery_id),
        feed_profile,
        snap,
        found=result.stripped_columns,
    )
    try:
        if not storage.keep:
            raise RuntimeError(storage.note)
        gate_rows = warehouse.delivery_gate_rows(delivery_id, result, run_id)
        gate_rows += _redaction_gate_row(delivery_id, result, storage, run_id)
        _check_unchanged(path, snap)
        crash_point("inbox_before_record")
        status = warehouse.load_accepted(
            con,
            delivery_id,
            result,
            received_at=received_at,
            processed_at=processed_at,
            stored_path=str(storage.target),  # named in the ledger before the move
            gate_rows=gate_rows,
        )
    except BaseException:
        _discard(storage)
        raise
    outcome = Outcome(
        delivery_id, profile.smo_id, result.feed, path.name, status, result.row_count, 0,
        storage.target,
    )  # fmt: skip
    return _store(con, path, storage, outcome)


def _reject(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    result: GateResult,
    feed_profile: FeedProfile | None,
    snap: _Snapshot,
    delivery_id: int,
    *,
    quarantine: Path,
    processed_at: dt.datetime,
    run_id: str | None,
) -> Outcome:
    target = _stored_path(path, quarantine / result.smo_id, delivery_id)
    if result.file_columns is None:
        storage = _unread_storage(target, feed_profile)
    else:
        storage = _prepare_storage(path, target, feed_profile, snap, found=result.stripped_columns)
    extra = {}
    if storage.redaction:
        extra["redaction"] = storage.redaction
    if not storage.keep:
        extra["not_kept"] = storage.note
    stored = storage.target if storage.keep else None
    try:
        _, md_path = write_reports(result, storage.target, extra=extra)
        gate_rows = warehouse.delivery_gate_rows(delivery_id, result, run_id)
        gate_rows += _redaction_gate_row(delivery_id, result, storage, run_id)
        crash_point("inbox_before_record")
        warehouse.record(
            con,
            delivery_id,
            result,
            status="REJECTED",
            received_at=snap.received_at,
            processed_at=processed_at,
            report_path=str(md_path),
            stored_path=None if stored is None else str(stored),
            gate_rows=gate_rows,
        )
    except BaseException:
        _discard(storage)
        raise
    first = result.problems[0] if result.problems else None
    outcome = Outcome(
        delivery_id, result.smo_id, result.feed, path.name, "REJECTED", result.row_count,
        result.error_count, stored, md_path, first.message if first else None,
    )  # fmt: skip
    return _store(con, path, storage, outcome)


def _duplicate_result(path: Path, profile: Profile, snap: _Snapshot) -> GateResult:
    result = GateResult(
        path=path,
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256=snap.sha256,
        size_bytes=snap.size,
    )
    matched = profile.feed_for(path.name)
    if matched is not None:
        result.feed = matched[0].feed
        result.study_id = matched[1].get("study_id")
        result.delivery_date = profile.parse_delivery_date(*matched)
    return result


# -- CDISC SDTM delivery sets -------------------------------------------------------------------


class RecordedSetNotStored(Exception):
    """An SDTM set's ledger rows are committed (PENDING) but its files could not all be moved
    out of the inbox (the next batch's `recover_pending` finishes the move)."""

    def __init__(self, outcomes: list[Outcome], cause: BaseException):
        self.outcomes, self.cause = outcomes, cause
        super().__init__(str(cause))


def _group_sdtm(files: list[InboxEntry], entries: list[InboxEntry], profile: Profile, folder):
    """The SMO's SDTM delivery sets among the ready files no feed pattern matches (None when
    its profile has no `sdtm:` section)."""
    if profile.sdtm is None:
        return None
    candidates = [e for e in files if profile.feed_for(e.name) is None]
    scanned = {e.path.name for e in entries}
    try:
        return group_sdtm(candidates, profile.sdtm, folder_names(folder), scanned)
    except Exception as exc:  # noqa: BLE001 - the SMO's other files and the other SMOs go on
        why = f"could not be grouped into SDTM deliveries: {_error_text(exc)}"
        return SdtmGrouping(waiting=[(f"{e.smo_id}/{e.name}", why) for e in candidates])


def _process_sdtm_grouping(
    summary: BatchSummary,
    con: duckdb.DuckDBPyConnection,
    grouping: SdtmGrouping,
    profile: Profile,
    roster: frozenset[str],
    context: Plausibility,
    *,
    archive: Path,
    quarantine: Path,
    run_id: str | None,
) -> None:
    """Incomplete sets wait in the inbox, unused domains are rejected one by one, and each
    complete set is loaded or rejected whole (oldest first)."""
    summary.skipped += grouping.waiting
    for entry, domain in grouping.unused:
        _run_step(summary, entry, _reject_unused_domain, con, entry, profile, domain, quarantine,
                  run_id)  # fmt: skip
    for sdtm_set in grouping.ready:
        outcomes = _run_set_step(
            summary, sdtm_set, con, sdtm_set, profile, roster,
            archive=archive, quarantine=quarantine, run_id=run_id, plausibility=context,
        )  # fmt: skip
        if any(o.feed == "sites" and o.status == "ACCEPTED" for o in outcomes):
            roster = warehouse.current_roster(con, profile.smo_id)
            context = plausibility(study_starts=roster_study_starts(con, profile.smo_id))


def _run_set_step(summary: BatchSummary, sdtm_set: SdtmSet, *args, **kwargs) -> list[Outcome]:
    """Run one SDTM set; whatever happens, the batch goes on."""
    where = [f"{e.smo_id}/{e.name}" for _, e in sdtm_set.members]
    try:
        outcomes = _process_set_or_reject(*args, **kwargs)
    except RecordedSetNotStored as exc:
        ids = ", ".join(str(o.delivery_id) for o in exc.outcomes)
        why = (f"recorded as deliveries {ids} (SDTM set {sdtm_set.name}) but not moved out of "
               f"the inbox ({_error_text(exc.cause)}); the next run finishes the move")  # fmt: skip
        summary.skipped += [(w, why) for w in where]
        outcomes = exc.outcomes
    except Exception as exc:  # noqa: BLE001 - recording the rejection itself failed
        why = f"SDTM set {sdtm_set.name} could not be processed or quarantined: {_error_text(exc)}"
        summary.skipped += [(w, why) for w in where]
        return []
    summary.outcomes.extend(outcomes)
    return outcomes


def _process_set_or_reject(
    con, sdtm_set: SdtmSet, profile: Profile, roster, *, archive, quarantine, run_id, plausibility
) -> list[Outcome]:
    try:
        return process_sdtm_set(
            con, sdtm_set, profile, roster, archive=archive, quarantine=quarantine,
            run_id=run_id, plausibility=plausibility,
        )  # fmt: skip
    except RecordedSetNotStored:
        raise
    except Exception as exc:  # noqa: BLE001 - an unforeseen failure is the whole set's rejection
        # The set's feeds load in one transaction (rolled back on error): nothing of it stays.
        problem = Problem(
            "file.unreadable",
            f"Processing the SDTM delivery set failed unexpectedly ({_error_text(exc)}); nothing "
            "of it was loaded. If the files are right, tell the pipeline's maintainers.",
        )
        paths = [e.path for _, e in sdtm_set.members]
        delivery = SdtmDelivery(paths=paths, domains={}, results=[], problems=[problem])
        snaps = {e.name: _snapshot_or_none(e.path) for _, e in sdtm_set.members}
        return [_reject_set(con, sdtm_set, profile, delivery, snaps, quarantine=quarantine,
                            processed_at=_now(), run_id=run_id)]  # fmt: skip


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _snapshot_or_none(path: Path) -> _Snapshot | None:
    try:
        return _snapshot(path)
    except (OSError, NotRegularFile):
        return None


def _set_digest(sdtm_set: SdtmSet, snaps: dict[str, _Snapshot | None]) -> str:
    """The set's identity: each domain file's domain, name and SHA-256, in domain order."""
    digest = hashlib.sha256()
    for domain, entry in sdtm_set.members:
        snap = snaps.get(entry.name)
        digest.update(f"{domain}:{entry.name}:{snap.sha256 if snap else ''}\n".encode())
    return digest.hexdigest()


def _set_details(sdtm_set: SdtmSet, snaps: dict[str, _Snapshot | None]) -> dict:
    return {
        "set": sdtm_set.name,
        "files": [
            {
                "file": entry.name,
                "domain": domain,
                "sha256": snaps[entry.name].sha256 if snaps.get(entry.name) else None,
                "size_bytes": snaps[entry.name].size if snaps.get(entry.name) else None,
            }
            for domain, entry in sdtm_set.members
        ],
    }


def _set_storages(sdtm_set: SdtmSet, folder: Path, profile: Profile, snaps) -> list[_Storage]:
    """How each domain file is kept in the set's folder (a redacted copy where the profile
    strips identifiers; an entry that is no longer a regular file is moved unopened)."""
    storages = []
    for _, entry in sdtm_set.members:
        target = folder / fit_name(entry.name)
        if not os.path.lexists(entry.path):  # gone meanwhile: nothing to keep
            storages.append(_Storage(target))
            continue
        if not classify(entry.path, entry.smo_id, os.lstat(entry.path)).deliverable:
            storages.append(_Storage(target))
            continue
        storage_feed = storage_profile(profile.sdtm, entry.path)
        storages.append(
            _prepare_storage(entry.path, target, storage_feed, snaps.get(entry.name), found=None)
        )
    return storages


def _discard_temps(storages: list[_Storage]) -> None:
    """Nothing of the set was recorded: remove its redacted copies, their records and the
    folder they were written to."""
    for storage in storages:
        _discard(storage)
    for folder in {s.target.parent for s in storages}:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: never a folder that holds a stored file


def _finish_set(sdtm_set: SdtmSet, storages: list[_Storage]) -> None:
    for (_, entry), storage in zip(sdtm_set.members, storages, strict=True):
        if os.path.lexists(entry.path):
            _finish_storage(entry.path, storage)


def _store_set(
    con: duckdb.DuckDBPyConnection, sdtm_set: SdtmSet, storages: list[_Storage],
    outcomes: list[Outcome],
) -> list[Outcome]:  # fmt: skip
    """The set's ledger rows are committed (PENDING): move its files, then mark every row DONE
    (a kill in between is finished by the next batch, `recover_pending`)."""
    crash_point("inbox_after_record")
    try:
        _finish_set(sdtm_set, storages)
    except Exception as exc:  # noqa: BLE001 - recorded; only the move failed
        raise RecordedSetNotStored(outcomes, exc) from exc
    crash_point("inbox_after_move")
    for outcome in outcomes:
        warehouse.mark_file_done(con, outcome.delivery_id)
    return outcomes


def _not_kept(sdtm_set: SdtmSet, storages: list[_Storage]) -> list[str]:
    """The domain files whose bytes are not kept (identifiers that could not be removed)."""
    return [e.name for (_, e), s in zip(sdtm_set.members, storages, strict=True) if not s.keep]


def process_sdtm_set(
    con: duckdb.DuckDBPyConnection,
    sdtm_set: SdtmSet,
    profile: Profile,
    roster: frozenset[str],
    *,
    archive: Path,
    quarantine: Path,
    run_id: str | None = None,
    plausibility: Plausibility | None = None,
) -> list[Outcome]:
    """One SDTM delivery set: loaded whole (one ledger row per canonical feed, in one
    transaction), recorded as a duplicate when the same files were loaded before, or rejected
    whole. The domain files are kept together in `<delivery id>__<set name>/`."""
    processed_at = _now()
    snaps: dict[str, _Snapshot | None] = {}
    for _, entry in sdtm_set.members:
        snaps[entry.name] = _snapshot(entry.path)  # not a regular file: the set's rejection
    sha256 = _set_digest(sdtm_set, snaps)
    received_at = max(s.received_at for s in snaps.values())
    loaded = warehouse.loaded_set_deliveries(con, profile.smo_id, sdtm_set.name, sha256)
    if loaded:
        return _duplicate_set(con, sdtm_set, profile, loaded, snaps, sha256, archive=archive,
                              received_at=received_at, processed_at=processed_at, run_id=run_id)  # fmt: skip
    delivery = check_sdtm_delivery(
        [e.path for _, e in sdtm_set.members], profile,
        received_at=received_at, roster=roster, plausibility=plausibility,
    )  # fmt: skip
    if not delivery.accepted:
        return [_reject_set(con, sdtm_set, profile, delivery, snaps, quarantine=quarantine,
                            processed_at=processed_at, run_id=run_id)]  # fmt: skip

    ids = [warehouse.next_delivery_id(con) for _ in delivery.results]
    folder = _stored_path(Path(sdtm_set.name), archive / profile.smo_id, ids[0])
    set_path = sdtm_set.members[0][1].path.with_name(sdtm_set.name)
    details = _set_details(sdtm_set, snaps)
    storages = _set_storages(sdtm_set, folder, profile, snaps)
    try:
        not_kept = [s.note for s in storages if not s.keep]
        if not_kept:
            raise RuntimeError(not_kept[0])
        loads = []
        for delivery_id, result in zip(ids, delivery.results, strict=True):
            feed_sha256 = result.sha256
            result.path, result.sha256 = set_path, sha256
            result.size_bytes = sum(s.size for s in snaps.values())
            gate_rows = warehouse.delivery_gate_rows(
                delivery_id, result, run_id,
                details={"sdtm_set": details, "feed_sha256": feed_sha256},
            )  # fmt: skip
            for storage in storages:
                gate_rows += _redaction_gate_row(delivery_id, result, storage, run_id)
            loads.append((delivery_id, result, gate_rows))
        for _, entry in sdtm_set.members:
            _check_unchanged(entry.path, snaps[entry.name])
        crash_point("inbox_before_record")
        statuses = warehouse.load_accepted_together(
            con, loads, received_at=received_at, processed_at=processed_at,
            stored_path=str(folder),  # named in the ledger before the move
        )  # fmt: skip
    except BaseException:
        _discard_temps(storages)
        raise
    outcomes = [
        Outcome(
            delivery_id,
            profile.smo_id,
            result.feed,
            sdtm_set.name,
            status,
            result.row_count,
            0,
            folder,
        )  # fmt: skip
        for (delivery_id, result, _), status in zip(loads, statuses, strict=True)
    ]
    return _store_set(con, sdtm_set, storages, outcomes)


def _duplicate_set(
    con, sdtm_set: SdtmSet, profile: Profile, loaded: dict[str, int], snaps, sha256: str, *,
    archive: Path, received_at: dt.datetime, processed_at: dt.datetime, run_id: str | None,
) -> list[Outcome]:  # fmt: skip
    """The same domain files (names and bytes) were loaded before: one DUPLICATE row per feed
    that delivery loaded, no rows; the files are archived."""
    feeds = sorted(loaded, key=FEED_LOAD_ORDER.index)
    ids = [warehouse.next_delivery_id(con) for _ in feeds]
    folder = _stored_path(Path(sdtm_set.name), archive / profile.smo_id, ids[0])
    storages = _set_storages(sdtm_set, folder, profile, snaps)
    kept = all(s.keep for s in storages)
    records, outcomes = [], []
    for delivery_id, feed in zip(ids, feeds, strict=True):
        result = GateResult(
            path=sdtm_set.members[0][1].path.with_name(sdtm_set.name),
            smo_id=profile.smo_id,
            profile_version=profile.version,
            sha256=sha256,
            size_bytes=sum(s.size for s in snaps.values()),
            feed=feed,
            delivery_date=_set_delivery_date(sdtm_set),
        )
        gate_rows = []
        for storage in storages:
            gate_rows += _redaction_gate_row(delivery_id, result, storage, run_id)
        records.append((delivery_id, result, gate_rows, {
            "status": "DUPLICATE", "received_at": received_at, "processed_at": processed_at,
            "report_path": None, "stored_path": str(folder) if kept else None,
            "duplicate_of": loaded[feed],
        }))  # fmt: skip
        outcomes.append(Outcome(delivery_id, profile.smo_id, feed, sdtm_set.name, "DUPLICATE",
                                0, 0, folder if kept else None))  # fmt: skip
    try:
        for _, entry in sdtm_set.members:
            _check_unchanged(entry.path, snaps[entry.name])
        crash_point("inbox_before_record")
        warehouse.record_together(con, records)  # all the set's rows, PENDING
    except BaseException:
        _discard_temps(storages)
        raise
    return _store_set(con, sdtm_set, storages, outcomes)


def _set_delivery_date(sdtm_set: SdtmSet) -> dt.date | None:
    """The delivery date the file names declare, if they do (as a duplicate file's)."""
    raw = dict(sdtm_set.key).get("delivery_date")
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(raw, fmt).date() if raw else None
        except ValueError:
            continue
    return None


def _reject_set(
    con, sdtm_set: SdtmSet, profile: Profile, delivery: SdtmDelivery, snaps, *,
    quarantine: Path, processed_at: dt.datetime, run_id: str | None,
) -> Outcome:  # fmt: skip
    """The whole set is refused: one REJECTED row and one report naming every problem of every
    domain file and feed (file, row, column, rule, value); the files go to quarantine together."""
    delivery_id = warehouse.next_delivery_id(con)
    folder = _stored_path(Path(sdtm_set.name), quarantine / profile.smo_id, delivery_id)
    result = GateResult(
        path=sdtm_set.members[0][1].path.with_name(sdtm_set.name),
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256=_set_digest(sdtm_set, snaps),
        size_bytes=sum(s.size for s in snaps.values() if s is not None),
        delivery_date=next((r.delivery_date for r in delivery.results), None),
    )
    for problem in delivery.problems:
        result.add(problem)
    totals = {(t.rule, t.column): t.count for t in result.totals}
    for feed_result in delivery.results:
        for problem in feed_result.problems:
            result.problems.append(
                dataclasses.replace(
                    problem,
                    file=feed_result.path.name,
                    message=f"[{feed_result.feed}] {problem.message}",
                )  # fmt: skip
            )
        for total in feed_result.totals:
            key = (total.rule, total.column)
            totals[key] = totals.get(key, 0) + total.count
    result.totals = [RuleTotal(rule, column, n) for (rule, column), n in totals.items()]
    verdicts = {
        r.feed: "passed its checks (not loaded)" if r.accepted
        else f"rejected ({r.error_count:,} problem(s))"
        for r in delivery.results
    }  # fmt: skip
    details = _set_details(sdtm_set, snaps)
    extra: dict = {"sdtm": {**details, "feeds": verdicts}}
    storages = _set_storages(sdtm_set, folder, profile, snaps)
    redacted = [s.redaction for s in storages if s.redaction]
    if redacted:
        extra["redaction"] = {
            "redacted": True,
            "columns_removed": sorted({c for r in redacted for c in r["columns_removed"]}),
            "original_sha256": result.sha256,
            "files": redacted,
        }
    not_kept = [s.note for s in storages if not s.keep]
    if not_kept:
        extra["not_kept"] = not_kept[0]
        details["not_kept"] = _not_kept(sdtm_set, storages)  # removed, never moved, on recovery
    # The folder holds something once the files are moved: a domain file still there and kept.
    kept = folder if any(
        s.keep and os.path.lexists(e.path)
        for (_, e), s in zip(sdtm_set.members, storages, strict=True)
    ) else None  # fmt: skip
    try:
        _, md_path = write_reports(result, folder, extra=extra)
        gate_rows = warehouse.delivery_gate_rows(delivery_id, result, run_id,
                                                 details={"sdtm_set": details})  # fmt: skip
        for storage in storages:
            gate_rows += _redaction_gate_row(delivery_id, result, storage, run_id)
        crash_point("inbox_before_record")
        warehouse.record(
            con, delivery_id, result, status="REJECTED",
            received_at=max((s.received_at for s in snaps.values() if s), default=processed_at),
            processed_at=processed_at, report_path=str(md_path),
            stored_path=None if kept is None else str(kept), gate_rows=gate_rows,
        )  # fmt: skip
    except BaseException:
        _discard_temps(storages)
        raise
    first = result.problems[0] if result.problems else None
    outcome = Outcome(
        delivery_id, profile.smo_id, None, sdtm_set.name, "REJECTED", 0, result.error_count,
        kept, md_path, first.message if first else None,
    )  # fmt: skip
    return _store_set(con, sdtm_set, storages, [outcome])[0]


def _reject_unused_domain(
    con, entry: InboxEntry, profile: Profile, domain: str, quarantine: Path, run_id: str | None
) -> Outcome:
    """A domain file the pipeline does not read (AE, TS, ...) is rejected on its own, so it is
    never archived as if it had been used; the set beside it goes on."""
    processed_at = _now()
    snap = _snapshot(entry.path)
    delivery_id = warehouse.next_delivery_id(con)
    result = GateResult(
        path=entry.path,
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256=snap.sha256,
        size_bytes=snap.size,
    )
    result.add(
        Problem(
            "sdtm.domain_unrecognized",
            f"'{entry.name}' holds SDTM domain {domain}, which the pipeline does not read (it "
            f"reads {', '.join(DOMAINS)}). The file is rejected on its own and nothing of it is "
            "loaded; the other domain files of the delivery are processed without it. Leave "
            "it out of the transfer.",
            value=domain,
        )
    )
    return _reject(
        con, entry.path, result, storage_profile(profile.sdtm, entry.path), snap, delivery_id,
        quarantine=quarantine, processed_at=processed_at, run_id=run_id,
    )  # fmt: skip
