"""Inspection evidence pack: one study's oversight over a range of as-of weeks, as a folder and a
zip an inspector can open offline (`smo-oversight evidence`, README "Inspection evidence pack").

Nothing is recomputed: every table is a filtered copy of the current publish
(`oversight.duckdb`: flags, flag lifecycle, QTLs, actions, lineage) or of the warehouse's
read-only copy (`ops.gate_results`, the ledger `ops.deliveries`, the KRI definitions seed), and
each week's report is the one kept at publish time. The live warehouse is never opened (it has
one writer). A report that was not kept is rendered from the kept BI file of that week when
there is one, and the index says so; otherwise the index says no report is kept.

The pack is written to a hidden folder beside `--out` and renamed into place when complete, so
a folder with the requested name is always a whole pack; `index.html` says what each file shows
and `manifest.json` holds the SHA-256 of every other file (index included). The zip beside it
holds the same files under the folder's name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import duckdb

from core.tables import Cell, html_table
from publishing.bi_database import META_TABLE, published_path

#: The actions feed's mart (marts.oversight_actions). Included when the publish carries it; the
#: index says "no actions feed published" otherwise. The one place that names it.
ACTIONS_MART = "oversight_actions"
INDEX_NAME, MANIFEST_NAME = "index.html", "manifest.json"
_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


class EvidenceError(Exception):
    """A request the pack cannot honour (unknown study, no week in range, nothing published):
    one line for the user, exit code 2."""


def parse_week(text: str, *, end: bool = False) -> dt.date:
    """`YYYY-MM-DD` (a date) or `YYYY-Www` (an ISO week: its Monday, or its Sunday when `end`).
    A range keeps the as-of weeks whose as_of_date falls between the two dates."""
    match = _ISO_WEEK.match(text.strip())
    try:
        if match:
            return dt.date.fromisocalendar(int(match[1]), int(match[2]), 7 if end else 1)
        return dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"week {text!r}: expected YYYY-MM-DD or YYYY-Www ({exc})") from None


@dataclass(frozen=True)
class PackFile:
    """One file of the pack and what it shows."""

    path: str  # relative to the pack folder, '/'-separated
    title: str
    description: str
    rows: int | None = None


@dataclass
class EvidencePack:
    folder: Path
    zip_path: Path
    study_id: str
    weeks: list[dt.date]
    publish_id: str
    files: list[PackFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Table:
    """A table of the pack: `sql` selects its rows (filtered, `order by all`) on a connection to
    the publish with the snapshot attached as `wh` and the pack's filters as temp tables."""

    name: str
    title: str
    description: str
    sql: str


def _lineage_sql() -> str:
    """deliveries_used of the study's weeks, plus the SMO-wide feeds (staffing: study_id null)
    of the SMOs serving the study that week, with each delivery's published verdict."""
    return """
        with serving as (
            select distinct u.as_of_date, u.smo_id from deliveries_used as u
            where u.study_id = getvariable('study') and u.as_of_date in (from pack_weeks)
        )
        select u.as_of_date, u.smo_id, u.feed, u.study_id, u.delivery_id, u.delivery_date,
               u.file_name, u.sha256, u.received_at, l.status
        from deliveries_used as u
        left join delivery_log as l using (delivery_id)
        where u.as_of_date in (from pack_weeks)
          and (u.study_id = getvariable('study')
               or (u.study_id is null and (u.as_of_date, u.smo_id) in (from serving)))
        order by all
    """


def _rejected_sql() -> str:
    """Files rejected for the study (or SMO-wide, from an SMO serving it) in the pack's window:
    they fed no week, but why an SMO's data did not move is evidence too."""
    return """
        select l.delivery_id, l.smo_id, l.feed, l.study_id, l.file_name, l.delivery_date,
               l.received_at, l.processed_at, l.status, l.error_count, l.rejection_reasons
        from delivery_log as l
        where l.status = 'REJECTED'
          and l.delivery_date > getvariable('window_start')
          and l.delivery_date <= getvariable('window_end')
          and (l.study_id = getvariable('study')
               or (l.study_id is null and l.smo_id in (select smo_id from pack_lineage)))
        order by all
    """


def _tables(actions_columns: set[str], published_tables: set[str]) -> list[_Table]:
    """The pack's tables; the actions mart's when the publish has it (`actions_columns`), the
    escalation mart's when it has that."""
    in_weeks = "study_id = getvariable('study') and as_of_date in (from pack_weeks)"
    tables = [
        _Table(META_TABLE, "Publish read",
               "The publish every table here is copied from (`meta` of oversight.duckdb): "
               "publish id, Dagster run, as-of date, code and KRI definition versions.",
               f"from {META_TABLE}"),
        _Table("site_flags", "Site flags",
               "Every site x KRI x as-of week of the study: value, numerator, denominator, "
               "z-score or fixed threshold, amber/red flag and the KRI version used "
               "(published `site_flags`).",
               f"from site_flags where {in_weeks} order by all"),
        _Table("flag_status", "Flag lifecycle per week",
               "Each week a flag is new, persisting (age in weeks) or resolved "
               "(published `flag_status`).",
               f"from flag_status where {in_weeks} order by all"),
        _Table("flag_episodes", "Flag episodes and their closure",
               "Every episode of flagged weeks overlapping the range: first and last flagged "
               "week, peak severity, resolved week; open/resolved as of the publish's latest "
               "as-of week (published `flag_episodes`).",
               "from flag_episodes where study_id = getvariable('study')"
               " and first_flagged_week <= getvariable('week_to')"
               " and (resolved_week is null or resolved_week >= getvariable('week_from'))"
               " order by all"),
        _Table("study_qtls", "QTL evaluations",
               "The study's quality tolerance limits per week: value, limit, status and the "
               "recorded evaluation (published `study_qtls`).",
               f"from study_qtls where {in_weeks} order by all"),
        _Table("kri_definitions", "KRI definition versions in force",
               "The KRI definitions (method, thresholds, weight, rationale) of every "
               "(KRI, version) the site flags name, from the warehouse copy's "
               "`reference.kri_definitions` (the versioned seed); a version missing there has empty definition "
               "columns.",
               """select f.kri_id, f.kri_version, d.* exclude (kri_id, version)
                  from (select distinct kri_id, kri_version from pack_site_flags) as f
                  left join wh.reference.kri_definitions as d
                    on d.kri_id = f.kri_id and d.version = f.kri_version and d.level = 'site'
                  order by all"""),
        _Table("lineage", "Lineage: deliveries in effect",
               "For each as-of week, SMO and feed, the delivery the week's numbers came from: "
               "file, SHA-256, received time and its verdict (published `deliveries_used` "
               "and `delivery_log`; SMO-wide feeds such as staffing have no study).",
               "from pack_lineage order by all"),
        _Table("rejected_deliveries", "Rejected deliveries",
               "Files of the study (or SMO-wide ones of its SMOs) rejected in the range, "
               "with the rules they broke (published `delivery_log`).",
               "from pack_rejected order by all"),
        _Table("gate_results", "Delivery gate results",
               "Every `ops.gate_results` row of the deliveries above (in effect or "
               "rejected): rule, target, outcome, observed value, details (row, column, "
               "value), from the warehouse's read-only copy.",
               """from wh.ops.gate_results
                  where delivery_id in (select delivery_id from pack_lineage
                                        union select delivery_id from pack_rejected
                                        union select delivery_id from pack_action_lists)
                  order by all"""),
        _Table("publish_run_gates", "Gates of the run that built the publish",
               "The warehouse (dbt tests), publish (great-expectations) and per-feed "
               "delivery gate results recorded by the Dagster run named in `meta` "
               "(`ops.gate_results` rows of that run with no delivery).",
               """from wh.ops.gate_results
                  where run_id = (select dagster_run_id from meta) and delivery_id is null
                  order by all"""),
    ]  # fmt: skip
    if actions_columns:
        where = []
        if "study_id" in actions_columns:
            where.append("study_id = getvariable('study')")
        # The mart holds each action's latest state (its closure included): no week filter.
        # spec 2.5's action rows: those open at some time in the range
        if "opened_date" in actions_columns:
            where.append("(opened_date is null or opened_date <= getvariable('week_to'))")
        if "closed_date" in actions_columns:
            where.append("(closed_date is null or closed_date > getvariable('window_start'))")
        tables.insert(
            5,
            _Table(
                "actions",
                "Actions and their closure",
                f"Actions recorded on the study's flags and QTLs, with their closure "
                f"(published `{ACTIONS_MART}`).",
                f"from {ACTIONS_MART}"
                + (" where " + " and ".join(where) if where else "")
                + " order by all",
            ),
        )
        tables.insert(
            6,
            _Table("actions_lineage", "Lineage: the actions lists",
                   "The sponsor's actions list deliveries the actions above come from: "
                   "file, SHA-256, received time and verdict (`ops.deliveries`).",
                   """select delivery_id, smo_id as sender, feed, file_name, sha256,
                             received_at, delivery_date, status
                      from wh.ops.deliveries
                      where delivery_id in (from pack_action_lists) order by all"""),
        )  # fmt: skip
    if "unattended_signals" in published_tables:
        tables.insert(
            5,
            _Table("unattended_signals", "Escalation: unattended signals",
                   "Each week's red flag episodes and QTL exceedances of the study: start, "
                   "action due by, first action, attended / awaiting / unattended "
                   "(published `unattended_signals`).",
                   f"from unattended_signals where {in_weeks} order by all"),
        )  # fmt: skip
    return tables


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchall()


def _literal(path: Path) -> str:
    """A path as an SQL string literal (a quote in a folder name cannot break the statement)."""
    return "'" + str(path).replace("'", "''") + "'"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weeks(
    con: duckdb.DuckDBPyConnection, study: str, week_from: dt.date | None, week_to: dt.date | None
) -> list[dt.date]:
    studies = [
        s
        for (s,) in _one(
            con,
            "select distinct study_id from deliveries_used where study_id is not null order by 1",
        )
    ]
    if study not in studies:
        raise EvidenceError(
            f"unknown study {study!r}: the current publish has {', '.join(studies) or 'none'}"
        )
    published = [
        w
        for (w,) in _one(
            con,
            "select distinct as_of_date from deliveries_used where study_id = ? order by 1",
            [study],
        )
    ]
    low, high = week_from or published[0], week_to or published[-1]
    weeks = [w for w in published if low <= w <= high]
    if not weeks:
        raise EvidenceError(
            f"no as-of week of {study} between {low} and {high} "
            f"(published weeks: {published[0]} .. {published[-1]})"
        )
    return weeks


def _kept_publishes(publish_dir: Path) -> dict[dt.date, tuple[str, Path]]:
    """as-of week -> (publish id, BI file) of the newest kept publish of that week: the one
    whose numbers stood at the end of the week (history/ plus the current file)."""
    found: dict[dt.date, tuple[str, Path]] = {}
    candidates = sorted((publish_dir / "history").glob("oversight-*.duckdb"))
    candidates.append(published_path(publish_dir))
    for path in candidates:
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                rows = _one(con, f"select publish_id, as_of_date from {META_TABLE}")
        except duckdb.Error:
            continue
        for publish_id, as_of in rows:
            if as_of not in found or publish_id > found[as_of][0]:
                found[as_of] = (publish_id, path)
    return found


def _add_reports(pack: EvidencePack, staging: Path, publish_dir: Path) -> list[list[str]]:
    """Each week's report: kept -> copied; its BI file kept -> rendered from it (said so);
    neither -> said so. Returns the index's report rows."""
    from publishing.report import REPORTS_DIR, render
    from publishing.report_html import csv_folder

    kept = _kept_publishes(publish_dir)
    (staging / "reports").mkdir()
    rows = []
    for week in pack.weeks:
        if week not in kept:
            rows.append(
                [
                    str(week),
                    "",
                    "no report kept: no publish of this as-of week is kept "
                    "(SMO_PUBLISH_KEEP); its numbers are in the tables",
                ]
            )
            continue
        publish_id, bi_file = kept[week]
        # The report's own name, with its CSV tables beside it: its links stay relative and work.
        target = f"reports/oversight-report-{publish_id}.html"
        tables = f"reports/{csv_folder(publish_id)}"
        report = publish_dir / REPORTS_DIR / f"oversight-report-{publish_id}.html"
        report_csvs = publish_dir / REPORTS_DIR / csv_folder(publish_id)
        if report.is_file() and report_csvs.is_dir():
            shutil.copyfile(report, staging / target)
            shutil.copytree(report_csvs, staging / tables)
            how = f"the report written by publish {publish_id}"
        else:
            try:
                rendered = render(bi_file)
            except duckdb.Error as exc:  # a publish older than today's report code
                rows.append(
                    [
                        str(week),
                        "",
                        f"no report kept; rendering it from the kept BI "
                        f"file of publish {publish_id} failed: {str(exc).splitlines()[0]}",
                    ]
                )
                continue
            (staging / target).write_text(rendered.html, encoding="utf-8")
            (staging / tables).mkdir()
            for table in rendered.csvs:
                (staging / tables / f"{table.name}.csv").write_text(table.text(), encoding="utf-8")
            how = (
                f"rendered now from the kept BI file of publish {publish_id} (the report "
                "written at publish time was not kept)"
            )
        pack.files.append(
            PackFile(
                target, f"Oversight report, as of {week}", f"Portfolio report (all studies): {how}."
            )
        )
        for csv in sorted((staging / tables).glob("*.csv")):
            pack.files.append(
                PackFile(
                    f"{tables}/{csv.name}",
                    f"Report table {csv.stem}, as of {week}",
                    "A table of the report above, as CSV (the report links to it).",
                )
            )
        rows.append([str(week), target, how])
    return rows


def _export(con: duckdb.DuckDBPyConnection, table: _Table, staging: Path) -> int:
    con.execute(f"create or replace temp table pack_{table.name} as {table.sql}")
    for fmt, suffix in (("csv, header", "csv"), ("parquet", "parquet")):
        path = staging / "tables" / f"{table.name}.{suffix}"
        con.execute(f"copy pack_{table.name} to {_literal(path)} (format {fmt})")
    return _one(con, f"select count(*) from pack_{table.name}")[0][0]


def _lineage_check(con: duckdb.DuckDBPyConnection) -> str:
    """The published lineage against the ledger: file, SHA-256 and received time must match."""
    differing = _one(
        con,
        """
        select distinct p.delivery_id from pack_lineage as p
        left join wh.ops.deliveries as d using (delivery_id)
        where d.delivery_id is null or p.file_name is distinct from d.file_name
           or p.sha256 is distinct from d.sha256 or p.received_at is distinct from d.received_at
        order by 1""",
    )
    total = _one(con, "select count(distinct delivery_id) from pack_lineage")[0][0]
    if differing:
        return (
            f"DIFFERS: deliveries {', '.join(str(d) for (d,) in differing)} of the published "
            "lineage do not match ops.deliveries (file, SHA-256, received time)"
        )
    return f"all {total} deliveries match ops.deliveries (file, SHA-256, received time)"


def write_evidence_pack(
    *,
    publish_dir: Path,
    snapshot: Path,
    study: str,
    out: Path,
    week_from: dt.date | None = None,
    week_to: dt.date | None = None,
) -> EvidencePack:
    """Write the pack for `study` to `out` (a new or empty folder) and `out`.zip beside it."""
    published = published_path(publish_dir)
    if not published.exists():
        raise EvidenceError(f"nothing published at {published}: run a refresh first")
    if not snapshot.exists():
        raise EvidenceError(f"no warehouse copy at {snapshot} (ops tables): run a refresh first")
    if week_from and week_to and week_from > week_to:
        raise EvidenceError(f"empty week range: --from {week_from} is after --to {week_to}")
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvidenceError(f"{out} exists and is not an empty folder")
    zip_path = out.with_name(out.name + ".zip")
    staging = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "tables").mkdir(parents=True)
    try:
        pack = _write(publish_dir, published, snapshot, study, week_from, week_to, staging)
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pack.folder, pack.zip_path = out, zip_path
    _write_zip(out, zip_path)
    return pack


def _write(
    publish_dir: Path,
    published: Path,
    snapshot: Path,
    study: str,
    week_from: dt.date | None,
    week_to: dt.date | None,
    staging: Path,
) -> EvidencePack:
    with duckdb.connect(str(published), read_only=True) as con:
        weeks = _weeks(con, study, week_from, week_to)
        con.execute(f"attach {_literal(snapshot)} as wh (read_only)")
        publish_id = _one(con, f"select publish_id from {META_TABLE}")[0][0]
        actions_columns = {
            c
            for (c,) in _one(
                con,
                "select column_name from duckdb_columns()"
                " where database_name = current_database()"
                " and table_name = ?",
                [ACTIONS_MART],
            )
        }
        con.execute("set variable study = ?", [study])
        con.execute("set variable week_from = ?::date", [weeks[0]])
        con.execute("set variable week_to = ?::date", [weeks[-1]])
        # A delivery counts towards the as-of week it precedes: (first week - 7 days, last week].
        con.execute("set variable window_start = ?::date", [weeks[0] - dt.timedelta(days=7)])
        con.execute("set variable window_end = ?::date", [weeks[-1]])
        con.execute(
            "create temp table pack_weeks as select unnest(?::date[]) as as_of_date", [weeks]
        )
        con.execute(f"create temp table pack_lineage as {_lineage_sql()}")
        con.execute(f"create temp table pack_rejected as {_rejected_sql()}")
        # the actions lists the study's actions were read from (their gate results go in too)
        action_lists = (
            f"select distinct delivery_id from {ACTIONS_MART} where study_id = getvariable('study')"
            if {"delivery_id", "study_id"} <= actions_columns
            else "select null::bigint as delivery_id where false"
        )
        con.execute(f"create temp table pack_action_lists as {action_lists}")
        published_tables = {
            t
            for (t,) in _one(
                con,
                "select table_name from duckdb_tables() where database_name = current_database()",
            )
        }
        pack = EvidencePack(staging, staging, study, weeks, publish_id)
        for table in _tables(actions_columns, published_tables):
            rows = _export(con, table, staging)
            for suffix in ("csv", "parquet"):
                pack.files.append(
                    PackFile(f"tables/{table.name}.{suffix}", table.title, table.description, rows)
                )
        if not actions_columns:
            pack.notes.append(
                f"Actions: no actions feed published (the publish has no `{ACTIONS_MART}` mart)."
            )
        pack.notes.append("Lineage check: " + _lineage_check(con))
    report_rows = _add_reports(pack, staging, publish_dir)
    _write_index(pack, staging, report_rows)
    return pack


def _write_index(pack: EvidencePack, staging: Path, report_rows: list[list[str]]) -> None:
    """index.html (what each file shows, relative links) then manifest.json (SHA-256 of every
    file, index.html included)."""
    tables = html_table(
        ["table", "what it shows", "rows", "files"],
        [
            [
                t.title,
                _raw(_code(t.description)),
                t.rows,
                _raw(" ".join(_link(f.path) for f in pack.files if f.title == t.title)),
            ]
            for t in pack.files
            if t.path.endswith(".csv")
        ],
        numeric=(2,),
    )
    reports = html_table(
        ["as-of week", "report", "source"],
        [[w, _raw(_link(p)) if p else "", how] for w, p, how in report_rows],
    )
    weeks = ", ".join(str(w) for w in pack.weeks)
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Evidence pack {escape(pack.study_id)} {pack.weeks[0]} .. {pack.weeks[-1]}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .6em;
text-align:left;vertical-align:top}}.num{{text-align:right}}</style></head><body>
<h1>Inspection evidence pack: {escape(pack.study_id)}</h1>
<p>As-of weeks {escape(weeks)}. Every table is a filtered copy of publish
<code>{escape(pack.publish_id)}</code> (<a href="tables/meta.csv">meta</a>) or of the
warehouse's ops tables; nothing is recomputed. Tables come as CSV and Parquet with the same
rows. <code>{MANIFEST_NAME}</code> holds the SHA-256 of every file.</p>
<h2>Notes</h2><ul>{"".join(f"<li>{_code(n)}</li>" for n in pack.notes)}</ul>
<h2>Tables</h2>{tables}
<h2>Reports</h2>{reports}
</body></html>
"""
    (staging / INDEX_NAME).write_text(html, encoding="utf-8")
    pack.files.insert(0, PackFile(INDEX_NAME, "Index", "This page."))
    manifest = {
        "study_id": pack.study_id,
        "weeks": [str(w) for w in pack.weeks],
        "publish_id": pack.publish_id,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "notes": pack.notes,
        "files": [
            {
                "path": f.path,
                "sha256": _sha256(staging / f.path),
                "bytes": (staging / f.path).stat().st_size,
                "rows": f.rows,
                "title": f.title,
            }
            for f in pack.files
        ],
    }
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _link(path: str) -> str:
    return f'<a href="{escape(path)}">{escape(path)}</a>'


def _code(text: str) -> str:
    """Escaped text with `backticked` names as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _raw(html: str) -> Cell:
    return Cell(html, raw=True)


def _write_zip(folder: Path, zip_path: Path) -> None:
    """Every file of the pack under `<folder name>/`, written beside and renamed into place."""
    temp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    temp.replace(zip_path)
