"""The weekly oversight report: one self-contained HTML file per publish.

Every number is read from the published BI database (never the warehouse), so the report shows
exactly what BI tools show and only data that passed every gate. Charts are static SVG
(publishing/charts.py): the file opens offline, with nothing to fetch. Written beside the BI file
as `oversight-report.html` (the latest, replaced atomically) and `reports/<publish id>.html`
(the last N kept, like the BI file's history). The tables it shows are written as CSV beside
each copy, in `oversight-report-<publish id>-csv/` (linked relatively, so both copies' links work),
with the same rules: written whole then renamed into place, kept and removed with their report.

The report is the list `SECTIONS`, in page order: each section is a data function
(`publishing/report_data.py`: the published marts -> plain rows) and a render function
(`publishing/report_html.py`: those rows -> HTML and chart ids). To add a section, write the two
functions and add one `Section(...)` line here; navigation, chart ids and the page follow.
This module is the entry point the rest of the project imports: `write_report`,
`headline_markdown`, `REPORT_NAME`, `REPORTS_DIR`, and `python -m publishing.report`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

import duckdb

from core.crash_points import crash_point
from publishing import report_data, report_html
from publishing.bi_database import published_path, published_publish_id
from publishing.report_data import Headline
from publishing.report_html import CsvTable, SectionHtml, headline_markdown

__all__ = [
    "REPORT_NAME",
    "REPORTS_DIR",
    "SECTIONS",
    "Headline",
    "Rendered",
    "ReportResult",
    "Section",
    "headline_markdown",
    "render",
    "write_report",
]

REPORT_NAME = "oversight-report.html"
REPORTS_DIR = "reports"

T = TypeVar("T")


@dataclass(frozen=True)
class Section(Generic[T]):
    """One section of the report: `<section id=key><h2>title</h2>`, its body rendered by
    `html(data(connection to the published file))`."""

    key: str
    title: str
    data: Callable[[duckdb.DuckDBPyConnection], T]
    html: Callable[[T], SectionHtml]


SECTIONS: list[Section[Any]] = [
    Section("attention", "Needs attention", report_data.needs_attention,
            report_html.needs_attention),
    Section("summary", "Portfolio summary", report_data.headline, report_html.summary),
    Section("scorecard", "SMO scorecard", report_data.scorecard, report_html.scorecard),
    Section("red-sites", "Sites with red flags", report_data.red_sites, report_html.red_sites),
    Section("flagged-sites", "Flagged sites: trend, flag history, actions",
            report_data.flagged_sites, report_html.flagged_sites),
    Section("qtls", "Quality tolerance limits per study", report_data.qtls, report_html.qtls),
    Section("enrollment", "Enrollment against plan and forecast", report_data.enrollment,
            report_html.enrollment),
    Section("representativeness", "Representativeness of enrollment",
            report_data.representativeness, report_html.representativeness),
    Section("funnels", "Central monitoring: funnel plots per KRI", report_data.funnels,
            report_html.funnels),
    Section("deviations", "Protocol deviations", report_data.deviation_trends,
            report_html.deviation_trends),
    Section("payments-timeliness", "Payments and data timeliness",
            report_data.payments_timeliness, report_html.payments_timeliness),
    Section("registry", "Registry benchmark and hygiene", report_data.registry,
            report_html.registry),
    Section("data-status", "Data status", report_data.data_status, report_html.data_status),
]  # fmt: skip


@dataclass(frozen=True)
class ReportResult:
    publish_id: str
    path: Path
    latest: Path
    headline: Headline
    charts: list[str]
    scorecard_markdown: str
    #: The CSV files of the latest report (its tables), beside it.
    csvs: list[Path]


class Rendered(NamedTuple):
    """A rendered report: publish id, HTML, headline, chart ids, the scorecard as Markdown and
    the tables as CSV (a tuple, so `publish_id, html, *_ = render(...)` reads it too)."""

    publish_id: str
    html: str
    headline: Headline
    charts: list[str]
    scorecard_markdown: str
    csvs: list[CsvTable]


def render(published: Path) -> Rendered:
    """Render the report of the published BI file."""
    with duckdb.connect(str(published), read_only=True) as con:
        meta = report_data.meta(con)
        data = {section.key: section.data(con) for section in SECTIONS}
    top: Headline = data["summary"]
    rendered = [(s.key, s.title, s.html(data[s.key])) for s in SECTIONS]
    html = report_html.page(meta, top, rendered)
    charts = [chart_id for *_, body in rendered for chart_id in body.charts]
    csvs = [table for *_, body in rendered for table in body.csvs]
    return Rendered(
        meta["publish_id"], html, top, charts, report_html.scorecard_markdown(data["scorecard"]),
        csvs,
    )  # fmt: skip


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)


def _write_csvs(folder: Path, tables: list[CsvTable]) -> list[Path]:
    """The report's tables as `<folder>/<name>.csv`: written into a temporary folder, fsynced and
    renamed into place, so a folder without the leading dot is complete. Replaces a folder of
    the same name (the same publish rendered again)."""
    # not `.tmp`: the publish removes `.*.tmp` files beside the BI file, this is a folder
    temp = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    for table in tables:
        path = temp / f"{table.name}.csv"
        path.write_text(table.text(), encoding="utf-8")
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    old = folder.with_name(f".{folder.name}.old")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    os.replace(temp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return sorted(folder.glob("*.csv"))


def _remove_csvs(folder: Path, keep: set[str]) -> None:
    """Remove CSV folders (and leftovers of unfinished writes) of reports no longer kept."""
    for path in folder.glob("*oversight-report-*-csv*"):
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def report_matches(publish_dir: Path) -> bool:
    """Whether `oversight-report.html` is the report of the current publish, with its CSV tables
    (True before the first publish): a run killed between the publish and the report leaves
    it behind."""
    publish_id = published_publish_id(publish_dir)
    if publish_id is None:
        return True
    latest = publish_dir / REPORT_NAME
    this = publish_dir / REPORTS_DIR / f"oversight-report-{publish_id}.html"
    csvs = publish_dir / report_html.csv_folder(publish_id)
    return (
        latest.exists()
        and this.exists()
        and latest.read_bytes() == this.read_bytes()
        and csvs.is_dir()
    )


def write_report(publish_dir: Path, *, keep: int) -> ReportResult:
    """Render the current publish and write it, with its tables as CSV, beside the BI file; keep
    the last `keep` (report and CSV folder) in reports/."""
    r = render(published_path(publish_dir))
    folder = publish_dir / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    csv_name = report_html.csv_folder(r.publish_id)
    _write_csvs(folder / csv_name, r.csvs)
    path = folder / f"oversight-report-{r.publish_id}.html"
    _write_atomic(path, r.html)
    crash_point("report")
    latest = publish_dir / REPORT_NAME
    csvs = _write_csvs(publish_dir / csv_name, r.csvs)
    _write_atomic(latest, r.html)
    _remove_csvs(publish_dir, {csv_name})
    kept = sorted(folder.glob("oversight-report-*.html"))
    for old in kept[:-keep]:
        old.unlink(missing_ok=True)
    _remove_csvs(folder, {p.stem + "-csv" for p in kept[-keep:]})
    return ReportResult(r.publish_id, path, latest, r.headline, r.charts, r.scorecard_markdown,
                        csvs)  # fmt: skip


def main() -> int:
    """Re-render the report of the current publish: `python -m publishing.report`."""
    from core.settings import load_settings

    settings = load_settings()
    if not published_path(settings.publish_dir).exists():
        print(f"Nothing published yet in {settings.publish_dir}; run `make demo` first.")
        return 1
    result = write_report(settings.publish_dir, keep=settings.publish_keep)
    print(f"{result.latest.resolve().as_uri()}  ({len(result.charts)} charts)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
