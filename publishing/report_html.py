"""The oversight report's HTML: one function per report section, from that section's rows.

Each section function takes what its namesake in `publishing/report_data.py` returns and gives a
`SectionHtml`: the section's body (tables through the project's one table helper,
`core.tables.html_table`; charts from `publishing/charts.py`), the ids of its charts and the
tables it exports as CSV (`_exported`: the same header and cell text, so a CSV is exactly the
table shown). `page` puts the sections under one heading, navigation and stylesheet into a
self-contained file (no script, nothing fetched) and links each section's CSV files relatively.
KPI names and units come with the data, from the published KRI definitions (kri_catalog). The scorecard and headline also have a Markdown view for Dagster
metadata (`scorecard_markdown`, `headline_markdown`, through `core.tables.markdown_table`).

To add a section: its data function in report_data.py, its function here (`def my_section(rows)
-> SectionHtml`, tables via `_table`/`_exported`, charts via `_grid`), and one `Section(...)` in
`SECTIONS` of publishing/report.py; the page's navigation and layout follow from that list.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict, astuple, dataclass
from html import escape, unescape

from core.tables import Cell, html_table, markdown_table
from publishing.charts import (
    PALETTE,
    Band,
    RangeRow,
    Series,
    ShareBar,
    funnel_chart,
    histogram,
    line_chart,
    percent,
    range_dots,
    share_bars,
    stacked_bars,
)
from publishing.report_data import (
    BELOW_PLAN_SHOWN,
    Attention,
    DataStatus,
    FlaggedSite,
    Funnel,
    Headline,
    KpiLabel,
    PaymentsTimeliness,
    RedSites,
    Registry,
    Representativeness,
    Scorecard,
    StudyEnrollment,
    StudyRepresentativeness,
    Trend,
)

#: The order KPIs are shown in (scorecard columns, funnel plots): enrollment, deviations, data
#: timeliness, payments, staffing. Names, units and denominators come from the published KRI
#: definitions (report_data.KpiLabel); this is only the display order.
KPI_ORDER = (
    "sites_activated_share", "on_time_activation", "activation_cycle_days", "irb_approval_days",
    "contract_execution_days", "time_to_first_patient_days", "enrollment_rate",
    "percent_of_target", "screen_failure_rate", "discontinuation_rate", "non_enrolling_site",
    "deviations_per_visit", "important_deviation_rate", "important_deviation_share",
    "important_eligibility_deviations_per_randomized", "deviation_identification_days",
    "deviation_reporting_days", "open_deviation_age_days", "entry_lag_mean_days",
    "entry_lag_over_10d_share", "payment_cycle_days", "paid_within_terms_share",
    "unpaid_over_90d_share", "cost_per_randomized", "crc_turnover", "sites_without_backup_crc",
    "randomized_per_crc_fte", "retroactive_changes",
)  # fmt: skip

STYLE = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212121; }
body { margin: 0 auto; max-width: 1240px; padding: 16px 24px 48px; line-height: 1.4; }
h1 { font-size: 1.6rem; margin: 0.2em 0; } h2 { font-size: 1.25rem; margin-top: 1.8em;
  border-bottom: 2px solid #e0e0e0; padding-bottom: 4px; } h3 { font-size: 1.05rem; }
.meta { color: #616161; font-size: 0.9rem; }
.headline { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px;
  margin: 16px 0; }
.metric { background: #f5f5f5; border-radius: 8px; padding: 10px 14px; }
.metric .value { display: block; font-size: 1.6rem; font-weight: 600; }
.metric .label { color: #616161; font-size: 0.85rem; }
.metric.alert .value { color: #c62828; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
figure.chart { margin: 0; border: 1px solid #e0e0e0; border-radius: 8px; padding: 6px; }
figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 0.8rem; color: #616161; padding: 2px 6px; }
svg text { font-size: 11px; fill: #424242; } svg .chart-title { font-size: 13px; font-weight: 600; }
svg .axis-label { font-size: 11.5px; fill: #212121; } svg .grid { stroke: #eeeeee; }
svg .axis, svg .tick-mark { stroke: #9e9e9e; } svg .point-label { font-size: 10px; font-weight: 600; }
svg .empty { font-size: 13px; fill: #757575; } svg .muted { fill: #757575; font-style: italic; }
table { border-collapse: collapse; font-size: 0.86rem; margin: 8px 0; width: 100%; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #fafafa; position: sticky; top: 0; }
th.num { text-align: right; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.rag-red { background: #ffcdd2; } td.rag-amber { background: #ffe0b2; }
td.rag-green { background: #c8e6c9; } td.rag-not_evaluated { color: #9e9e9e; }
td.rag-no_data, td.rag-incomplete { background: #eeeeee; color: #616161; }
td.rag-incomplete { font-weight: 600; }
.no-data { background: #eeeeee; color: #616161; padding: 0 3px; }
.arrow { font-size: 0.8em; margin-left: 4px; } .better { color: #2e7d32; } .worse { color: #c62828; }
.stale { color: #c62828; font-weight: 600; }
.note { color: #616161; font-size: 0.85rem; }
.site-block { border-top: 1px solid #e0e0e0; margin-top: 12px; }
.site-block h3 { margin: 8px 0 4px; } .site-block h4 { margin: 6px 0 2px; font-size: 0.9rem; }
.site-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr));
  gap: 12px; align-items: start; }
.csv-links { font-size: 0.85rem; }
table.episodes td:nth-child(2), table.episodes td:nth-child(3) { white-space: nowrap; }
nav a { margin-right: 12px; font-size: 0.9rem; }
@media print { .charts { grid-template-columns: 1fr; } }
"""

#: Shown instead of a list table that has no rows.
NO_ROWS = '<p class="note">None.</p>'


@dataclass(frozen=True)
class CsvTable:
    """A table of the report as CSV: `name` (the file `<name>.csv`), its header and rows as the
    page shows them (each cell's text), written beside the report (publishing/report.py)."""

    name: str
    header: list[str]
    rows: list[list[str]]

    def text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue()


@dataclass(frozen=True)
class SectionHtml:
    """A section's body, the ids of the charts in it and the tables it exports as CSV, in page
    order."""

    html: str
    charts: tuple[str, ...] = ()
    csvs: tuple[CsvTable, ...] = ()


def _fmt(value, unit: str = "", currency: str = "EUR") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "days":
        return f"{value:.1f} d"
    if unit == "currency":
        return f"{currency} {value:,.0f}"
    if unit == "count" or isinstance(value, int):
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _kpi_order(kpi: str) -> tuple[int, str]:
    """KPIs in KPI_ORDER (unknown ones last, by id)."""
    return (KPI_ORDER.index(kpi) if kpi in KPI_ORDER else 999, kpi)


def _label(labels: dict[str, KpiLabel], kpi: str) -> KpiLabel:
    """A KPI's published name, unit and denominator; its id when the definitions lack it."""
    return labels.get(kpi) or KpiLabel(kpi, "", "denominator")


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    """A list table of the report ("None." when it has no rows)."""
    return html_table(header, rows, numeric=numeric, empty=NO_ROWS)


def cell_text(cell: object) -> str:
    """A table cell's text as CSV holds it: what the reader sees, with a unit under a label
    (`<br><small>`) in parentheses and week-on-week arrows (`span.arrow`, hover detail) left
    out."""
    if not isinstance(cell, Cell):
        return "" if cell is None else " ".join(str(cell).split())
    if cell.value is None:
        return ""
    text = str(cell.value)
    if cell.raw:
        text = re.sub(r'<span class="arrow[^"]*"[^>]*>.*?</span>', "", text)
        text = re.sub(r"<br\s*/?>\s*<small>(.*?)</small>", r" (\1)", text)
        text = unescape(re.sub(r"<[^>]*>", "", re.sub(r"<br\s*/?>", " ", text)))
    return " ".join(text.split())


def _exported(
    name: str, header: list, rows: list[list], numeric: set[int] = frozenset(), table_class=""
) -> tuple[str, CsvTable]:
    """A list table of the report (inside `<div data-csv=name>`) and the same header and rows,
    as the page shows them, for `<name>.csv`."""
    table = html_table(header, rows, numeric=numeric, table_class=table_class, empty=NO_ROWS)
    return f'<div class="exported" data-csv="{escape(name)}">{table}</div>', CsvTable(
        name, [cell_text(h) for h in header], [[cell_text(c) for c in row] for row in rows]
    )


def _grid(charts: list[tuple[str, str]]) -> SectionHtml:
    """(chart id, SVG figure) pairs as a responsive grid of charts."""
    return SectionHtml(
        '<div class="charts">' + "".join(svg for _, svg in charts) + "</div>",
        tuple(chart_id for chart_id, _ in charts),
    )


# -- summary ------------------------------------------------------------------------------------


def summary(h: Headline) -> SectionHtml:
    share = h.randomized / h.target if h.target else None
    metrics = [
        ("studies", h.studies, "studies", False),
        ("sites_activated", f"{h.sites_activated:,}", f"sites activated of {h.sites_in_roster:,}",
         False),
        ("randomized", f"{h.randomized:,}", f"randomized of target {h.target:,}"
         + (f" ({share:.0%})" if share is not None else ""), False),
        ("red_flags", h.red_flags, f"red site flags this week ({h.red_flag_sites} sites)",
         h.red_flags > 0),
        ("deliveries_rejected_this_week", h.deliveries_rejected_this_week,
         "deliveries rejected this week", h.deliveries_rejected_this_week > 0),
        ("stale_feeds", h.stale_feeds, "stale SMO feeds", h.stale_feeds > 0),
    ]  # fmt: skip
    cards = "".join(
        f'<div class="metric{" alert" if alert else ""}" data-metric="{key}">'
        f'<span class="value">{escape(str(value))}</span>'
        f'<span class="label">{escape(label)}</span></div>'
        for key, value, label, alert in metrics
    )
    return SectionHtml(f'<div class="headline">{cards}</div>')


def headline_markdown(top: Headline) -> str:
    return markdown_table(
        ["measure", "value"],
        [(name.replace("_", " "), value) for name, value in asdict(top).items()],
    )


# -- scorecard ----------------------------------------------------------------------------------


def _pivot(s: Scorecard) -> tuple[list[str], list[str], dict[tuple[str, str], dict], dict]:
    """KPIs (columns, in KPI_ORDER), SMOs (rows), the cell rows and each SMO's overall RAG."""
    kpis = sorted({r["kpi_id"] for r in s.current}, key=_kpi_order)
    smos = sorted({r["smo_id"] for r in s.current})
    cells = {(r["smo_id"], r["kpi_id"]): r for r in s.current}
    overall = {r["smo_id"]: r["overall_rag"] for r in s.current}
    return kpis, smos, cells, overall


def _overall_cell(smo: str, s: Scorecard, rag: str) -> Cell:
    """The SMO's overall RAG; incomplete says on hover which contracted inputs are missing."""
    reason = next((r.get("incomplete_reason") for r in s.current if r["smo_id"] == smo), None)
    attrs = {"title": f"contracted but not delivered: {reason}"} if reason else {}
    return Cell(rag, css_class=f"rag-{rag}", attrs=attrs)


def _scorecard_cell(smo: str, kpi: str, r: dict | None, before, unit: str) -> Cell | None:
    """The KRI's value in its RAG colour, with an arrow for the change since last week."""
    if r is None:
        return None
    if r["rag"] == "no_data":
        return Cell(
            "no data",
            css_class="rag-no_data",
            attrs={"data-smo": smo, "data-kpi": kpi, "data-rag": "no_data",
                   "title": r.get("no_data_reason") or "no data"},
        )  # fmt: skip
    arrow = ""
    if before is not None and r["value"] is not None and before != r["value"]:
        up = r["value"] > before
        better = up == (r["direction"] == "low")
        arrow = (
            f'<span class="arrow {"better" if better else "worse"}" '
            f'title="last week {_fmt(before, unit)}">{"▲" if up else "▼"}</span>'
        )
    elif before is not None:
        arrow = f'<span class="arrow" title="last week {_fmt(before, unit)}">▶</span>'
    return Cell(
        escape(_fmt(r["value"], unit)) + arrow,
        css_class=f"num rag-{r['rag']}",
        attrs={"data-smo": smo, "data-kpi": kpi, "data-rag": r["rag"]},
        raw=True,
    )


def scorecard(s: Scorecard) -> SectionHtml:
    """The SMO scorecard: RAG per KRI with the week-on-week change."""
    kpis, smos, cells, overall = _pivot(s)
    header = ["SMO", "overall"] + [
        Cell(
            f"{escape(_label(s.labels, k).label)}<br><small>{escape(_label(s.labels, k).unit)}"
            "</small>",
            raw=True,
        )
        for k in kpis
    ]
    rows = []
    for smo in smos:
        rag = overall.get(smo) or ""
        kris = [
            _scorecard_cell(
                smo, k, cells.get((smo, k)), s.previous.get((smo, k)), _label(s.labels, k).unit
            )
            for k in kpis
        ]
        rows.append([smo, _overall_cell(smo, s, rag), *kris])
    table, table_csv = _exported("scorecard", header, rows, table_class="scorecard")
    return SectionHtml(
        table
        + '<p class="note">Cell colour: RAG against the KRI thresholds (seeds/kri_definitions.csv). '
        "Arrows: change since last week, green when better, red when worse; hover for last "
        "week's value.</p>"
        + '<p class="note legend">Grey <b>no data</b>: the SMO did not deliver what the KPI needs '
        "(a feed, or a column its format does not carry; hover for the reason), never counted as "
        "green. Overall <b>incomplete</b>: a feed or column the SMO is contracted to deliver "
        "(seeds/smo_feed_contracts.csv) is missing.</p>",
        csvs=(table_csv,),
    )


def scorecard_markdown(s: Scorecard) -> str:
    """The scorecard for Dagster metadata: value (RAG) per SMO and KRI."""
    kpis, smos, cells, overall = _pivot(s)
    rows = [
        [smo, overall.get(smo) or ""]
        + [
            ""
            if (r := cells.get((smo, kpi))) is None
            else f"{_fmt(r['value'], _label(s.labels, kpi).unit)} ({r['rag']})"
            for kpi in kpis
        ]
        for smo in smos
    ]
    return markdown_table(["SMO", "overall", *(_label(s.labels, k).label for k in kpis)], rows)


# -- red sites ----------------------------------------------------------------------------------


def _kris_with_data(r: dict) -> Cell:
    """How many KRIs the risk score was computed from; hover names those without data."""
    missing = r.get("no_data_kris") or ""
    return Cell(
        r.get("kris_with_data"),
        css_class="rag-no_data" if missing else "",
        attrs={"title": f"no data: {missing}"} if missing else {},
    )


#: What the risk score is, wherever it is shown.
RISK_SCALE = (
    "Risk score 0-100: the points of the site's red (the KRI's weight) and amber (half the "
    "weight) within-study flags over the summed weights of the KRIs that had data, x 100; "
    "KRIs without data add nothing to either (column 'from KRIs')."
)


def _kri(r: dict) -> tuple[str, str]:
    """A flag's KRI name and unit as published (kri_catalog); its id when the catalog lacks it."""
    return r.get("kri_label") or r["kri_id"], r.get("kri_unit") or ""


def _num(value) -> str:
    """A number as a lead reads it: up to 3 decimals, no trailing zeros; '–' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _value(value, unit: str) -> str:
    """A KRI value in its unit: shares as percentages, the rest as numbers with the unit."""
    if value is None:
        return "–"
    if unit == "share":
        return f"{value:.1%}"
    return f"{_num(value)} {unit}".strip()


def _short(value, unit: str) -> str:
    """A KRI value in a table whose KRI column names the unit: percentages, or the number."""
    return _value(value, unit) if unit == "share" else _num(value)


def _red_rule(r: dict) -> str:
    """When the flag turns red: the z-score limit (funnel) or the value limit (fixed)."""
    red, direction = r["red_threshold"], r["direction"]
    if r["method"] == "funnel":
        return {"low": f"z < -{_num(red)}", "both": f"|z| > {_num(red)}"}.get(
            direction, f"z > {_num(red)}"
        )
    unit = _kri(r)[1]
    return {"low": f"value < {_value(red, unit)}", "both": f"|value| > {_value(red, unit)}"}.get(
        direction, f"value > {_value(red, unit)}"
    )


def _test(r: dict) -> str:
    """The flag's test: the z-score against its limit, or the value against the fixed limit."""
    if r["method"] == "funnel":
        return f"z = {_num(round(r['z_score'], 1))}, red at {_red_rule(r)}"
    return f"red at {_red_rule(r)}"


def _red_for(r: dict) -> str:
    """Where the flag's episode stands (flag_status): new this week, or flagged N weeks."""
    if r.get("flag_status") == "new":
        return "new this week"
    weeks = r.get("flag_age_weeks")
    if weeks is None:
        return "flag history not published"
    return f"flagged {weeks} weeks (since {r['first_flagged_week']})"


def _action_line(a: dict) -> str:
    """One oversight action in a line: id, status, dates, owner, what."""
    dates = f"opened {a.get('opened_date') or '–'}, due {a.get('due_date') or '–'}"
    closed = f", closed {a['closed_date']}" if a.get("closed_date") else ""
    # action_text stays in the warehouse (not published); the outcome, when closed, is.
    what = a.get("action_text") or a.get("outcome")
    return (
        f"{a.get('action_id') or ''} {a.get('status') or ''} ({dates}{closed}; "
        f"{a.get('owner') or 'no owner'})" + (f": {what}" if what else "")
    ).strip()


def red_flag_line(r: dict) -> str:
    """One red flag in one sentence: site, KRI, value against its study, the test, how long."""
    label, unit = _kri(r)
    score = "–" if r["risk_score"] is None else f"{r['risk_score']:.1f}/100"
    action = _action_line(r["open_action"]) if r.get("open_action") else "no open action"
    return (
        f"{r['site_id']} ({r['smo_id']}, {r['study_id']}): {label} {_value(r['value'], unit)} "
        f"vs {_value(r['group_value'], unit)} for its study ({_test(r)}; "
        f"{_num(r['numerator'])} of {_num(r['denominator'])}); {_red_for(r)}; "
        f"site risk score {score}; {action}"
    )


def qtl_line(q: dict) -> str:
    """One QTL exceedance in one sentence: study, parameter, value against its limit, status."""
    side = "above" if q["direction"] == "high" else "below"
    weeks = q["weeks_exceeded"]
    return (
        f"{q['study_id']}: QTL {q['description']} {_num(q['value'])} {side} the limit "
        f"{_num(q['limit_value'])} ({_num(q['numerator'])} of {_num(q['denominator'])}), "
        f"exceeded {weeks} week{'s' if weeks != 1 else ''} in a row; {_evaluation(q)}"
    )


def _evaluation(q: dict) -> str:
    """A QTL exceedance's evaluation: the sponsor's QTL action (study_qtls), or its absence."""
    if not q.get("evaluation_action_id"):
        return "no evaluation recorded"
    return (
        f"evaluation {q['evaluation_action_id']} {q.get('evaluation_status') or ''}, not closed"
        if q.get("evaluation_status") not in ("DONE",)
        else f"evaluated by {q['evaluation_action_id']}"
    )


def unattended_line(u: dict) -> str:
    """One unattended signal in one sentence: what, since when, when an action was due."""
    weeks = u["weeks_since_start"]
    since = f"red since {u['started_week']} ({weeks} week{'s' if weeks != 1 else ''})"
    if u["signal_type"] == "QTL":
        what = f"{u['study_id']}: QTL {u.get('qtl_description') or u['qtl_id']}"
        since = since.replace("red since", "exceeded since")
    else:
        what = (
            f"{u['site_id']} ({u['smo_id']}, {u['study_id']}): {u.get('kri_label') or u['kri_id']}"
        )
    return f"{what}, {since}; no action opened by {u['action_due_by']}"


def overdue_line(a: dict) -> str:
    """One overdue action: id, target, owner, how late."""
    days = a.get("days_overdue")
    return (
        f"{a['action_id']} on {a.get('target_label') or a.get('target_type')} "
        f"({a.get('study_id')}): {a.get('status')}, due {a.get('due_date')}, "
        f"{days} day{'s' if days != 1 else ''} overdue; owner {a.get('owner') or '–'}"
    )


def _share_text(r: dict) -> str:
    """A representativeness row's share: the percentage, 'suppressed (<5)' or 'no data' (which
    wins: a unit without the column has nothing to suppress)."""
    if r["no_data_reason"]:
        return f"no data ({r['no_data_reason']})"
    if r["suppressed"]:
        return "suppressed (<5)"
    if r["share"] is None:
        return "no data"
    return _fmt(r["share"], "share")


def _percent(value) -> str:
    """A plan share as a percentage ('45%', '12.5%'), '–' for none."""
    return "–" if value is None else percent(value)


def below_minimum_line(r: dict) -> str:
    """A study or SMO below its plan minimum in one sentence: where, group, share vs minimum,
    how many randomized, the plan and KRI versions."""
    where = r["study_id"] + (f", {r['smo_id']}" if r["level"] == "smo" else " (whole study)")
    n = r["randomized_with_dimension"]
    return (
        f"{where}: {r['dimension']} {r['group_code']} {_share_text(r)} vs minimum "
        f"{_percent(r['minimum_share'])} (target {_percent(r['target_share'])}) of "
        f"{_num(n)} randomized with {r['dimension']} delivered; plan {r['plan_id']} "
        f"v{r['plan_version']}, KRI {r['kri_id']} v{r['kri_version']}"
    )


def attention_items(a: Attention) -> list[tuple[str, str]]:
    """The needs-attention items as (kind, sentence), QTL exceedances first: the report's list
    and `make demo`'s summary."""
    return (
        [("qtl", f"QTL exceeded, evaluation due: {qtl_line(q)}") for q in a.qtls_due]
        + [("red-flag", f"New red flag: {red_flag_line(r)}") for r in a.new_red_flags]
        + [
            ("representativeness", f"Below diversity plan minimum: {below_minimum_line(r)}")
            for r in a.below_minimum
        ]
        + [("unattended", f"Unattended: {unattended_line(u)}") for u in a.unattended]
        + [("overdue-action", f"Overdue action: {overdue_line(x)}") for x in a.overdue_actions]
    )


def needs_attention(a: Attention) -> SectionHtml:
    """One line per item a lead can act on this week."""
    items = "".join(
        f'<li data-attention="{kind}">{escape(line)}</li>' for kind, line in attention_items(a)
    )
    note = (
        '<p class="note">QTL exceedances with no evaluation recorded (a QTL oversight action '
        "closed as DONE, as published); red site flags whose episode starts this week (not "
        "flagged last week, flag_status); open red flags and QTL exceedances with no action "
        "opened within SMO_ACTION_DUE_DAYS of their start (unattended_signals); studies and "
        "SMOs whose share of a group is below the diversity plan's minimum with at least 20 "
        "randomized (enrollment_representativeness); open actions "
        f"past their due date (oversight_actions). {a.persisting_red_flags} red flags persist "
        'from earlier weeks: see <a href="#red-sites">Sites with red flags</a>.</p>'
    )
    return SectionHtml((f"<ul>{items}</ul>" if items else NO_ROWS) + note)


def _flag_cell(key: str, field_name: str, text: str, number) -> Cell:
    """A red-flag table cell carrying its mart value (data-number) beside the formatted text."""
    attrs = {"data-flag": key, "data-field": field_name}
    if number is not None:
        attrs["data-number"] = repr(float(number))
    return Cell(text, attrs=attrs)


def red_sites(red: RedSites) -> SectionHtml:
    """The riskiest red sites, then every red flag with its value, comparator and test."""

    def labels(kris: str | None) -> str:
        return ", ".join(_label(red.labels, k).label for k in (kris or "").split(", ") if k)

    sites, sites_csv = _exported(
        "red-sites",
        ["site", "SMO", "study", "country", "risk score (0-100)", "from KRIs", "red KRIs",
         "amber KRIs"],
        [
            [r["site_id"], r["smo_id"], r["study_id"], r["country"] or "",
             "–" if r["risk_score"] is None else f"{r['risk_score']:.1f}", _kris_with_data(r),
             labels(r["red_kris"]), labels(r["amber_kris"])]
            for r in red.sites
        ],
        {4, 5},
    )  # fmt: skip
    rows = []
    for r in red.flags:
        key = f"{r['smo_id']}|{r['study_id']}|{r['site_id']}|{r['kri_id']}"
        label, unit = _kri(r)
        z = r["z_score"] if r["method"] == "funnel" else None
        age = (
            "new this week"
            if r["flag_status"] == "new"
            else ("–" if r["flag_age_weeks"] is None else f"{r['flag_age_weeks']} weeks")
        )
        action = r.get("open_action")
        rows.append([
            Cell(f'<a href="#{_site_anchor(r)}">{escape(r["site_id"])}</a>', raw=True),
            r["smo_id"], r["study_id"],
            Cell(f"{escape(label)}<br><small>{escape(unit)}</small>", raw=True,
                 attrs={"title": r["kri_id"], "data-flag": key, "data-field": "kri",
                        "data-label": label, "data-unit": unit}),
            _flag_cell(key, "value", _short(r["value"], unit), r["value"]),
            _flag_cell(key, "group_value", _short(r["group_value"], unit), r["group_value"]),
            _flag_cell(key, "z_score", "–" if z is None else _num(round(z, 1)), z),
            _flag_cell(key, "red_threshold", _red_rule(r), r["red_threshold"]),
            _flag_cell(key, "numerator", _num(r["numerator"]), r["numerator"]),
            _flag_cell(key, "denominator", _num(r["denominator"]), r["denominator"]),
            _flag_cell(key, "flag_age_weeks", age, r["flag_age_weeks"]),
            Cell(_action_line(action) if action else "none",
                 attrs={"data-flag": key, "data-field": "open_action"}),
        ])  # fmt: skip
    flags, flags_csv = _exported(
        "red-flags",
        [
            "site",
            "SMO",
            "study",
            "KRI",
            "site value",
            "study value",
            "z-score",
            "red at",
            "numerator",
            "denominator",
            "flagged for",
            "open action",
        ],
        rows,
        {4, 5, 6, 8, 9},
    )
    return SectionHtml(
        sites
        + f'<p class="note">{escape(RISK_SCALE)}</p>'
        + f"<h3>Red flags this week ({len(red.flags)})</h3>"
        + '<p class="note">Each site is compared with the sites of its study: the study value '
        "is their pooled rate (all numerators over all denominators). Funnel KRIs are red when "
        "the over-dispersion-adjusted z-score passes the limit, fixed KRIs when the value does. "
        "KRI names, units and thresholds are the published KRI definitions (kri_catalog). "
        "'Flagged for': the calendar weeks since the flag's episode began (amber or red in a "
        "row, flag_status); 'open action': the sponsor's open action on the flag.</p>" + flags,
        csvs=(sites_csv, flags_csv),
    )


def _site_anchor(r: dict) -> str:
    """The id of a flagged site's block (linked from the red-flag table)."""
    raw = f"site-{r['smo_id']}-{r['study_id']}-{r['site_id']}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", raw)


# -- flagged sites ------------------------------------------------------------------------------

#: flag_episodes' status this week as the report says it.
EPISODE_NOW = {"new": "new this week", "persisting": "persisting", "resolved": "resolved this week"}


def _episode_row(site: dict, e: dict) -> list:
    """One flag episode of a site (flag_episodes), its site first (dropped in the site's block)."""
    now = EPISODE_NOW.get(e["status_this_week"] or "", "not evaluated this week")
    status = (f"resolved {e['resolved_week']}" if e["status"] == "resolved"
              else f"open, {e['age_weeks']} weeks ({now})")  # fmt: skip
    return [
        site["smo_id"], site["study_id"], site["site_id"],
        Cell(e["kri_label"] or e["kri_id"], attrs={"title": e["kri_id"]}),
        str(e["first_flagged_week"]), str(e["last_flagged_week"]), e["weeks_flagged"],
        Cell(e["peak_severity"], css_class=f"rag-{e['peak_severity']}"), status,
    ]  # fmt: skip


EPISODE_HEADER = ["SMO", "study", "site", "KRI", "first flagged", "last flagged",
                  "weeks flagged", "peak", "status"]  # fmt: skip


def _site_chart(b: FlaggedSite, r: dict) -> tuple[str, str]:
    """The red KRI's weekly value at the site against its study's, with the red limit of a
    fixed KRI."""
    label, unit = _kri(r)
    chart_id = f"{_site_anchor(r)}-{r['kri_id'].replace('_', '-')}"
    trend = b.trends.get(r["kri_id"], {})
    series = [
        Series(r["site_id"], [(t["as_of_date"], t["value"]) for t in trend.get("site", [])],
               PALETTE[1]),
        Series("study", [(t["as_of_date"], t["value"]) for t in trend.get("study", [])],
               "#757575", dashed=True),
    ]  # fmt: skip
    hlines = [(r["red_threshold"], "red limit", "#c62828")] if r["method"] == "fixed" else []
    return chart_id, line_chart(
        chart_id,
        f"{label}: {r['site_id']} week by week",
        "as-of week",
        f"{label} ({unit})",
        series,
        hlines=hlines,
        markers=True,
        height=220,
    )


def flagged_sites(blocks: list[FlaggedSite]) -> SectionHtml:
    """Per site with a red flag: its red KRIs week by week, its flag episodes, the actions."""
    html, charts, history = [], [], []
    for b in blocks:
        site = b.site
        rows = [_episode_row(site, e) for e in b.episodes]
        history += rows
        figures = [_site_chart(b, r) for r in b.flags]
        charts += [chart_id for chart_id, _ in figures]
        actions = (
            "<ul>" + "".join(f"<li>{escape(_action_line(a))}</li>" for a in b.actions) + "</ul>"
            if b.actions
            else '<p class="note">No action recorded.</p>'
        )
        score = "–" if site["risk_score"] is None else f"{site['risk_score']:.1f}/100"
        html.append(
            f'<article class="site-block" id="{_site_anchor(site)}" '
            f'data-site="{escape(site["smo_id"])}|{escape(site["study_id"])}|'
            f'{escape(site["site_id"])}">'
            f"<h3>{escape(site['site_id'])} · {escape(site['smo_id'])} · "
            f"{escape(site['study_id'])} · risk score {score}</h3>"
            '<div class="site-grid">'
            + "".join(svg for _, svg in figures)
            + '<div class="site-history"><h4>Flag history</h4>'
            + html_table(EPISODE_HEADER[3:], [row[3:] for row in rows],
                         numeric={3}, table_class="episodes", empty=NO_ROWS)
            + f"<h4>Actions</h4>{actions}</div></div></article>"
        )  # fmt: skip
    _, history_csv = _exported("flag-history", EPISODE_HEADER, history)
    return SectionHtml(
        '<p class="note">Every site with a red flag this week, riskiest first: each red KRI '
        "week by week (the site against its study, from kpi_weekly_history; a fixed KRI with "
        "its red limit), every flag episode of the site within its study (flag_episodes: a run "
        "of weeks flagged amber or red) and the sponsor's actions on the site.</p>"
        + ("".join(html) or NO_ROWS),
        tuple(charts),
        (history_csv,),
    )


# -- quality tolerance limits -------------------------------------------------------------------

#: study_qtls.qtl_status as the report says it.
QTL_STATUS = {
    "within_limit": "within limit",
    "exceeded_evaluation_due": "EXCEEDED, evaluation due",
    "exceeded_evaluated": "exceeded, evaluated",
    "not_evaluable": "no data",
}


def qtls(rows: list[dict]) -> SectionHtml:
    """Every study's QTLs: value, limit, status and the recorded evaluation."""
    table_rows = []
    for q in rows:
        key = f"{q['study_id']}|{q['qtl_id']}"
        status = q["qtl_status"]
        css = {"exceeded_evaluation_due": "rag-red", "exceeded_evaluated": "rag-amber",
               "within_limit": "rag-green", "not_evaluable": "rag-no_data"}.get(status, "")  # fmt: skip
        evaluation = (
            f"{q['evaluated_on']} by {q['evaluated_by']}: {q['conclusion'] or ''}"
            if q["evaluated_on"]
            else ""
        )
        table_rows.append([
            q["study_id"], Cell(q["description"], attrs={"title": q["qtl_id"]}),
            Cell(_num(q["value"]), attrs={"data-qtl": key, "data-field": "value"}),
            Cell(("> " if q["direction"] == "high" else "< ") + _num(q["limit_value"]),
                 attrs={"data-qtl": key, "data-field": "limit_value"}),
            f"{_num(q['numerator'])} / {_num(q['denominator'])}",
            Cell(QTL_STATUS.get(status, status), css_class=css,
                 attrs={"data-qtl": key, "data-field": "qtl_status", "data-status": status}),
            q["weeks_exceeded"] or "",
            evaluation,
        ])  # fmt: skip
    table, table_csv = _exported(
        "qtls",
        [
            "study",
            "quality tolerance limit",
            "value",
            "limit",
            "numerator / denominator",
            "status",
            "weeks exceeded in a row",
            "evaluation",
        ],
        table_rows,
        {2, 3, 4, 6},
    )
    return SectionHtml(
        table + '<p class="note">Study-level quality tolerance limits (ICH E6(R3) 3.10.1.3, seed '
        "qtl_definitions). An exceedance needs a recorded evaluation (the sponsor's QTL oversight "
        "action, closed with its outcome); "
        "'no data' means the study has no value for the parameter yet.</p>",
        csvs=(table_csv,),
    )


# -- enrollment ---------------------------------------------------------------------------------


def enrollment(studies: list[StudyEnrollment]) -> SectionHtml:
    """Per study: cumulative randomized against the plan, the target and the forecast fan."""
    charts = []
    for i, s in enumerate(studies):
        f, actual, fan = s.forecast, s.actual, s.fan
        study = f["study_id"]
        series = [
            Series("randomized", [(r["as_of_date"], r["numerator"]) for r in actual], PALETTE[0])
        ]
        if f["planned_start_date"] and f["planned_end_date"]:
            series.append(
                Series(
                    "plan",
                    [(f["planned_start_date"], 0), (f["planned_end_date"], f["target_enrollment"])],
                    "#757575",
                    dashed=True,
                )
            )
        bands = []
        if fan:
            series.append(
                Series(
                    "forecast P50",
                    [(r["forecast_date"], r["randomized_p50"]) for r in fan],
                    PALETTE[3],
                    dashed=True,
                )
            )
            bands.append(
                Band(
                    "forecast P10-P90",
                    [r["forecast_date"] for r in fan],
                    [r["randomized_p10"] for r in fan],
                    [r["randomized_p90"] for r in fan],
                    PALETTE[3],
                )
            )
        note = (
            f"Target {f['target_enrollment']:,} ({f['target_source']}); median date to reach it "
            f"{f['target_date_p50'] or 'beyond the horizon'} (P10 {f['target_date_p10'] or '–'},"
            f" P90 {f['target_date_p90'] or '–'}); {f['draws']:,} seeded draws."
        )
        chart_id = f"enrollment-{i + 1}"
        charts.append(
            (
                chart_id,
                line_chart(
                    chart_id,
                    f"{study}: cumulative randomized vs plan",
                    "date",
                    "randomized (subjects, cumulative)",
                    series,
                    bands=bands,
                    hlines=[(f["target_enrollment"], "target", "#c62828")],
                    note=note,
                ),
            )
        )
    return _grid(charts)


# -- representativeness of enrollment ----------------------------------------------------------


def _chart_id(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", "-".join(parts))


def _share_bar(r: dict) -> ShareBar:
    if r["no_data_reason"] or (r["share"] is None and not r["suppressed"]):
        status = "no_data"
    else:
        status = "suppressed" if r["suppressed"] else ""
    return ShareBar(r["group_code"], r["share"], r["target_share"], r["minimum_share"], status,
                    r["no_data_reason"] or "", r["flag"])  # fmt: skip


def _dimension_chart(study: str, dimension: str, rows: list[dict]) -> tuple[str, str]:
    """A dimension's study-level share per plan group with its target and minimum marks."""
    chart_id = _chart_id("representativeness", study, dimension)
    n = rows[0]["randomized_with_dimension"]
    missing = next((r["smos_without_data"] for r in rows if r.get("smos_without_data")), None)
    if isinstance(missing, list | tuple):
        missing = ", ".join(missing)
    note = f"{_num(n)} randomized subjects with {dimension} delivered." if n else ""
    if missing:
        note += f" No {dimension} column from: {missing}."
    return chart_id, share_bars(
        chart_id,
        f"{study}: {dimension} of randomized subjects vs plan",
        "share of randomized subjects (%)",
        "plan group (term)",
        [_share_bar(r) for r in rows],
        note=note.strip(),
    )


def _trend_chart(s: StudyRepresentativeness) -> tuple[str, str]:
    """The study-level share of each group with a minimum, week by week, with its minimum."""
    chart_id = _chart_id("representativeness", s.study_id, "trend")
    keys = list(dict.fromkeys((r["dimension"], r["group_code"]) for r in s.trend))
    series, hlines = [], []
    for i, (dimension, group) in enumerate(keys):
        mine = [r for r in s.trend if (r["dimension"], r["group_code"]) == (dimension, group)]
        colour = PALETTE[i % len(PALETTE)]
        # a suppressed or no-data week has share NULL: left out of the line, never 0; a group
        # without any published share is not drawn at all (its bar chart says why)
        points = [(r["as_of_date"], r["share"] * 100) for r in mine if r["share"] is not None]
        if points:
            series.append(Series(f"{dimension} {group}", points, colour))
            hlines.append((mine[-1]["minimum_share"] * 100, f"minimum {group}", colour))
    return chart_id, line_chart(
        chart_id,
        f"{s.study_id}: share of groups with a minimum, week by week",
        "as-of week",
        "share of randomized subjects (%)",
        series,
        hlines=hlines,
        markers=True,
        height=240,
        note="Dotted lines: each group's minimum share in the group's colour (hover a line for its "
        "group); weeks suppressed (<5) are not drawn.",
    )


BELOW_PLAN_HEADER = ["level", "SMO", "site", "dimension", "group", "share", "target", "minimum",
                     "gap (pp)", "randomized", "flag"]  # fmt: skip


def _below_plan_row(r: dict) -> list:
    gap = "–" if r["gap_pp"] is None else f"{r['gap_pp']:+.1f}"
    return [
        r["level"], r["smo_id"] or "", r["site_id"] or "", r["dimension"], r["group_code"],
        _share_text(r), _percent(r["target_share"]), _percent(r["minimum_share"]), gap, _num(r["randomized_with_dimension"]),
        Cell(r["flag"], css_class=f"rag-{r['flag']}"),
    ]  # fmt: skip


def _export_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value)


def representativeness(r: Representativeness) -> SectionHtml:
    """Per study with a plan: a chart per dimension (share per group, target and minimum marks),
    the SMOs and sites furthest below plan and the trend of the groups with a minimum; per study
    without one, one line. The latest week's rows are exported as CSV."""
    if not r.published:
        return SectionHtml(
            '<p class="note">This publish has no representativeness mart '
            "(enrollment_representativeness); it was published before the mart existed.</p>"
        )
    blocks, charts = [], []
    for s in r.studies:
        if s.plan_id is None:
            blocks.append(
                f'<p class="note no-plan" data-study="{escape(s.study_id)}">'
                f"{escape(s.study_id)}: no diversity plan ({escape(s.no_plan_reason or '')})</p>"
            )
            continue
        # a dimension the plan has no groups for is a note, not a chart of one remainder row
        planned = list(dict.fromkeys(g["dimension"] for g in s.groups if g["plan_id"]))
        unplanned = [
            f"{escape(g['dimension'])}: {escape(g['no_data_reason'] or 'not in the plan')}"
            for g in s.groups
            if g["dimension"] not in planned
        ]
        figures = [
            _dimension_chart(s.study_id, d, [g for g in s.groups if g["dimension"] == d])
            for d in planned
        ]
        if s.trend:
            figures.append(_trend_chart(s))
        charts += [chart_id for chart_id, _ in figures]
        blocks.append(
            f'<article class="study-block" data-study="{escape(s.study_id)}">'
            f"<h3>{escape(s.study_id)} · plan {escape(s.plan_id)} v{escape(str(s.plan_version))}"
            "</h3>"
            '<div class="charts">' + "".join(svg for _, svg in figures) + "</div>"
            + (f'<p class="note">Not in the plan: {"; ".join(dict.fromkeys(unplanned))}.</p>'
               if unplanned else "")
            + "<h4>SMOs and sites furthest below plan</h4>"
            + html_table(BELOW_PLAN_HEADER, [_below_plan_row(x) for x in s.below_plan],
                         numeric={5, 6, 7, 8, 9}, table_class="below-plan", empty=NO_ROWS)
            + "</article>"
        )  # fmt: skip
    export = CsvTable(
        "representativeness", list(r.columns),
        [[_export_cell(row[c]) for c in r.columns] for row in r.rows],
    )  # fmt: skip
    return SectionHtml(
        '<p class="note">Randomized subjects per plan group (diversity plan, seeds/'
        "diversity_plans.csv) against the plan's target (solid mark) and minimum (dashed), for "
        "the latest as-of week. The share's denominator counts the randomized subjects whose "
        "SMO delivered the dimension's column; 'NOT IN PLAN' holds values in no plan group "
        "(including unknown and not reported). Cells under 5 subjects (and their complement) "
        "are suppressed, never shown as 0; a dimension no SMO delivered is 'no data'. Study and "
        "SMO flags: red below the minimum with at least 20 randomized (a bar is red or amber "
        "when its flag is); sites: funnel within the study. 'Furthest below plan': SMO and site "
        "rows of groups with a minimum that are flagged red or amber or below target, red and "
        "amber first, then by gap (percentage points), at most "
        f"{BELOW_PLAN_SHOWN} per study. The CSV holds every row of the week (study, SMO, site).</p>"
        + ("".join(blocks) or NO_ROWS),
        tuple(charts),
        (export,),
    )


# -- funnel plots -------------------------------------------------------------------------------


def funnels(plots: list[Funnel]) -> SectionHtml:
    """One funnel plot per KRI, in KPI_ORDER."""
    charts = []
    for f in sorted(plots, key=lambda f: _kpi_order(f.kri_id)):
        label, unit, denominator = astuple(f.label or _label({}, f.kri_id))
        points = [
            (r["denominator"], r["value"], f"{r['site_id']}", r["flag"] or "") for r in f.plotted
        ]
        flagged = sum(1 for r in f.plotted if r["flag"] in ("red", "amber"))
        chart_id = f"funnel-{f.kri_id.replace('_', '-')}"
        charts.append(
            (
                chart_id,
                funnel_chart(
                    chart_id,
                    f"{label}: sites vs portfolio (funnel)",
                    f"denominator ({denominator})",
                    f"{label} ({unit})",
                    points,
                    f.limits,
                    f.centre,
                    note=f"{len(f.plotted)} sites at or above the minimum denominator; over-"
                    f"dispersion φ = {f.phi:.2f}; {flagged} flagged (labelled). Limits are "
                    "portfolio rate ± 2 and 3 σ·√φ.",
                ),
            )
        )
    return _grid(charts)


# -- protocol deviations ------------------------------------------------------------------------


def deviation_trends(trends: list[Trend]) -> SectionHtml:
    """One line per SMO per KPI, week by week."""
    charts = []
    for trend in trends:
        rows, kpi = trend.rows, trend.kpi_id
        smos = sorted({r["smo_id"] for r in rows})
        label, unit, _ = astuple(trend.label or _label({}, kpi))
        series = [
            Series(
                smo,
                [(r["as_of_date"], r["value"]) for r in rows if r["smo_id"] == smo],
                PALETTE[i % len(PALETTE)],
            )
            for i, smo in enumerate(smos)
        ]
        chart_id = f"trend-{kpi.replace('_', '-')}"
        charts.append(
            (
                chart_id,
                line_chart(
                    chart_id,
                    f"{label} by SMO, week by week",
                    "as-of week",
                    f"{label} ({unit})",
                    series,
                    note="No data (not drawn): "
                    + "; ".join(f"{r['smo_id']}: {r['reason']}" for r in trend.no_data)
                    if trend.no_data
                    else "",
                ),
            )
        )
    return _grid(charts)


# -- payments and data timeliness ---------------------------------------------------------------


def _payment_chart(rows: list[dict]) -> tuple[str, str]:
    currency = rows[0]["currency"] if rows else "EUR"
    return (
        "payment-aging",
        stacked_bars(
            "payment-aging",
            "Unpaid amounts by age, per SMO",
            "SMO",
            f"unpaid amount ({currency})",
            [r["smo_id"] for r in rows],
            {
                "0-30 days": [r["b0"] for r in rows],
                "31-60 days": [r["b1"] for r in rows],
                "61-90 days": [r["b2"] for r in rows],
                "over 90 days": [r["b3"] for r in rows],
            },
            colours=["#81c784", "#ffd54f", "#ffb74d", "#e57373"],
            note="Age since the earning event (visit, milestone) of lines not yet paid.",
        ),
    )


def _entry_lag_chart(values: list[float]) -> tuple[str, str]:
    return (
        "entry-lag",
        histogram(
            "entry-lag",
            "Data-entry lag: distribution across sites",
            "mean lag from visit to eCRF entry per site (days)",
            "sites (count)",
            values,
            bin_width=1.0,
            reference=(10, "10 days"),
            note=f"{len(values)} sites with entered visits; mean lag per site this week.",
        ),
    )


def payments_timeliness(p: PaymentsTimeliness) -> SectionHtml:
    grid = _grid([_payment_chart(p.payment_aging), _entry_lag_chart(p.entry_lags)])
    if not p.no_data:
        return grid
    items = "; ".join(
        f'<span class="no-data" title="{escape(r["reason"] or "no data")}">{escape(r["smo_id"])}: '
        f"{escape(r['reason'] or 'no data')}</span>"
        for r in p.no_data
    )
    return SectionHtml(
        grid.html + f'<p class="note legend">No data (grey, not zero): {items}.</p>', grid.charts
    )


# -- registry -----------------------------------------------------------------------------------


def _percentile(b: dict) -> str:
    """`P40 of 12 peers`, or why there is no percentile (`too few peers (3)`): never `Pnan`."""
    value = b["peer_percentile"]
    if value is not None and math.isfinite(value):
        return f"P{value:.0f} of {b['peer_studies']} peers"
    return str(b.get("peer_percentile_reason") or f"no percentile ({b['peer_studies']} peers)")


def registry(r: Registry) -> SectionHtml:
    """The registry benchmark (chart and table) and the registry hygiene findings."""
    chart = _grid(
        [
            (
                "registry-benchmark",
                range_dots(
                    "registry-benchmark",
                    "Enrollment rate vs registry peers",
                    "enrollment rate (randomized per site-month)",
                    "study",
                    [
                        RangeRow(
                            b["study_id"],
                            b["peer_p25_rate"],
                            b["peer_median_rate"],
                            b["peer_p75_rate"],
                            b["enrollment_rate"],
                            annotation=f"({_percentile(b)})",
                        )
                        for b in r.benchmark
                    ],
                    note="Peers: completed or active registry studies of the same condition and "
                    "phase.",
                ),
            )
        ]
    )
    benchmark = _table(
        ["study", "NCT id", "rate", "peers", "peer P25", "peer median", "peer P75", "percentile"],
        [
            [b["study_id"], b["nct_id"] or "", _fmt(b["enrollment_rate"]), str(b["peer_studies"]),
             _fmt(b["peer_p25_rate"]), _fmt(b["peer_median_rate"]), _fmt(b["peer_p75_rate"]),
             _percentile(b)]
            for b in r.benchmark
        ],
        {2, 3, 4, 5, 6, 7},
    )  # fmt: skip
    hygiene = _table(
        ["finding", "study", "NCT id", "SMO", "site", "roster", "registry"],
        [
            [h["finding"], h["study_id"] or "", h["nct_id"] or "", h["smo_id"] or "",
             h["site_id"] or "", str(h["roster_value"] or ""), str(h["registry_value"] or "")]
            for h in r.hygiene
        ],
    )  # fmt: skip
    return SectionHtml(
        chart.html + benchmark + "<h3>Registry hygiene findings</h3>" + hygiene, chart.charts
    )


# -- data status --------------------------------------------------------------------------------


def _freshness_cell(r: dict | None) -> Cell | None:
    """Age of a feed's last accepted delivery (and rejections since), red when stale."""
    if r is None:
        return None
    age = "never" if r["age_days"] is None else f"{r['age_days']} d"
    rejected = (
        f" · {r['rejected_since_last_accepted']} rejected"
        if r["rejected_since_last_accepted"]
        else ""
    )
    return Cell(
        f"{age}{rejected}",
        css_class="num stale" if r["is_stale"] else "num",
        attrs={
            "data-smo": r["smo_id"],
            "data-feed": r["feed"],
            "data-stale": str(r["is_stale"]).lower(),
            "title": f"last accepted {r['last_accepted_delivery_date'] or 'never'}",
        },
    )


def data_status(d: DataStatus) -> SectionHtml:
    """Feed freshness per SMO and feed, rejected deliveries, retroactive changes."""
    feeds = sorted({r["feed"] for r in d.freshness})
    by_smo: dict[str, dict[str, dict]] = {}
    for r in d.freshness:
        by_smo.setdefault(r["smo_id"], {})[r["feed"]] = r
    fresh_table = html_table(
        ["SMO", *(Cell(f, css_class="num") for f in feeds)],
        [
            [smo, *(_freshness_cell(cells.get(f)) for f in feeds)]
            for smo, cells in sorted(by_smo.items())
        ],
    )
    limit = d.freshness[0]["stale_after_days"] if d.freshness else "–"
    rejected_rows = [
        [r["delivery_date"] or "", r["smo_id"], r["feed"] or "", r["file_name"],
         r["rejection_reasons"] or ""]
        for r in d.rejected
    ]  # fmt: skip
    change_header = ["delivered", "SMO", "study", "site", "feed", "record", "change", "field",
                     "old", "new"]  # fmt: skip
    withheld = "free text, not published"
    change_rows = [
        [str(r["delivery_date"]), r["smo_id"], r["study_id"] or "", r["site_id"] or "", r["feed"],
         r["record_key"] or "", r["change_kind"], r["field"] or "",
         *((withheld, withheld) if r.get("values_withheld") else (r["old_value"], r["new_value"]))]
        for r in d.changes
    ]  # fmt: skip
    return SectionHtml(
        "<h3>Age of the last accepted delivery, per SMO and feed</h3>"
        f'<p class="note">A feed is stale when its newest accepted delivery is more than '
        f"{limit} days older than the as-of date (SMO_STALE_FEED_AFTER_DAYS); stale feeds are in "
        "red. Hover a cell for the delivery date.</p>"
        + fresh_table
        + f"<h3>Rejected deliveries ({len(d.rejected)} shown, newest first)</h3>"
        + _table(["delivery date", "SMO", "feed", "file", "reasons"], rejected_rows)
        + f"<h3>Retroactive changes detected ({d.changes_total}; newest 25 shown)</h3>"
        + _table(change_header, change_rows)
    )


# -- the page -----------------------------------------------------------------------------------


def csv_folder(publish_id: str) -> str:
    """The folder, beside the report, holding its tables as CSV (named for the publish, so the
    latest report and its kept copy link to the same relative path)."""
    return f"oversight-report-{publish_id}-csv"


def _csv_links(folder: str, csvs: tuple[CsvTable, ...]) -> str:
    """Relative links to a section's tables as CSV."""
    if not csvs:
        return ""
    links = " · ".join(
        f'<a href="{escape(folder)}/{escape(c.name)}.csv" data-csv-link="{escape(c.name)}">'
        f"{escape(c.name)}.csv</a>"
        for c in csvs
    )
    return f'<p class="csv-links">Tables as CSV (the rows shown): {links}</p>'


def page(meta: dict, top: Headline, sections: list[tuple[str, str, SectionHtml]]) -> str:
    """The whole report: title, publish line, navigation, then each (key, title, body) section."""
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    folder = csv_folder(meta["publish_id"])
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{content.html}'
        + _csv_links(folder, content.csvs)
        + "</section>"
        for key, title, content in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>SMO oversight report, as of {escape(top.as_of_date)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>SMO oversight report, as of {escape(top.as_of_date)}</h1>"
        f'<p class="meta">Publish {escape(meta["publish_id"])} · published '
        f"{escape(str(meta['published_at']))[:19]} UTC · code {escape(str(meta['code_version']))}"
        f" · KRI definitions {escape(str(meta['kri_definitions_version']))} · "
        f"{meta['deliveries_included']} deliveries · registry data "
        f"{escape(str(meta['registry_data_timestamp'] or 'not fetched'))}"
        + (
            f' <strong class="stale">(STALE: {escape(str(meta.get("registry_stale_reason")))})'
            "</strong>"
            if meta.get("registry_stale")
            else ""
        )
        + ". "
        "Every number comes from the published marts, which passed the delivery, warehouse and "
        "publish gates.</p>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )
