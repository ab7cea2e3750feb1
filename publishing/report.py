"""The weekly oversight report: one self-contained HTML file per publish.

Every number is read from the published BI database (never the warehouse), so the report shows
exactly what BI tools show and only data that passed every gate. Charts are static SVG
(publishing/charts.py): the file opens offline, with nothing to fetch. Written beside the BI file
as `oversight-report.html` (the latest, replaced atomically) and `reports/<publish id>.html`
(the last N kept, like the BI file's history).

The report is the list `SECTIONS`, in page order: each section is a data function
(`publishing/report_data.py`: the published marts -> plain rows) and a render function
(`publishing/report_html.py`: those rows -> HTML and chart ids). To add a section, write the two
functions and add one `Section(...)` line here; navigation, chart ids and the page follow.
This module is the entry point the rest of the project imports: `write_report`,
`headline_markdown`, `REPORT_NAME`, `REPORTS_DIR`, and `python -m publishing.report`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import duckdb

from core.crash_points import crash_point
from publishing import report_data, report_html
from publishing.bi_database import published_path, published_publish_id
from publishing.report_data import Headline
from publishing.report_html import SectionHtml, headline_markdown

__all__ = [
    "REPORT_NAME",
    "REPORTS_DIR",
    "SECTIONS",
    "Headline",
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
    Section("qtls", "Quality tolerance limits per study", report_data.qtls, report_html.qtls),
    Section("enrollment", "Enrollment against plan and forecast", report_data.enrollment,
            report_html.enrollment),
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


def render(published: Path) -> tuple[str, str, Headline, list[str], str]:
    """The publish id, the report's HTML, its headline, the chart ids and the scorecard as
    Markdown."""
    with duckdb.connect(str(published), read_only=True) as con:
        meta = report_data.meta(con)
        data = {section.key: section.data(con) for section in SECTIONS}
    top: Headline = data["summary"]
    rendered = [(s.key, s.title, s.html(data[s.key])) for s in SECTIONS]
    html = report_html.page(meta, top, rendered)
    charts = [chart_id for *_, body in rendered for chart_id in body.charts]
    return meta["publish_id"], html, top, charts, report_html.scorecard_markdown(data["scorecard"])


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)


def report_matches(publish_dir: Path) -> bool:
    """Whether `oversight-report.html` is the report of the current publish (True before the
    first publish): a run killed between the publish and the report leaves it behind."""
    publish_id = published_publish_id(publish_dir)
    if publish_id is None:
        return True
    latest = publish_dir / REPORT_NAME
    this = publish_dir / REPORTS_DIR / f"oversight-report-{publish_id}.html"
    return latest.exists() and this.exists() and latest.read_bytes() == this.read_bytes()


def write_report(publish_dir: Path, *, keep: int) -> ReportResult:
    """Render the current publish and write it beside the BI file; keep the last `keep`."""
    publish_id, html, top, charts, scorecard_md = render(published_path(publish_dir))
    folder = publish_dir / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"oversight-report-{publish_id}.html"
    _write_atomic(path, html)
    crash_point("report")
    latest = publish_dir / REPORT_NAME
    _write_atomic(latest, html)
    for old in sorted(folder.glob("oversight-report-*.html"))[:-keep]:
        old.unlink(missing_ok=True)
    return ReportResult(publish_id, path, latest, top, charts, scorecard_md)


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
