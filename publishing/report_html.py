"""The oversight report's HTML: one function per report section, from that section's rows.

Each section function takes what its namesake in `publishing/report_data.py` returns and gives a
`SectionHtml`: the section's body (tables through the project's one table helper,
`core.tables.html_table`; charts from `publishing/charts.py`) and the ids of its charts. `page`
puts the sections under one heading, navigation and stylesheet into a self-contained file (no
script, nothing fetched). The scorecard and headline also have a Markdown view for Dagster
metadata (`scorecard_markdown`, `headline_markdown`, through `core.tables.markdown_table`).

To add a section: its data function in report_data.py, its function here (`def my_section(rows)
-> SectionHtml`, tables via `_table`/`html_table`, charts via `_grid`), and one `Section(...)` in
`SECTIONS` of publishing/report.py; the page's navigation and layout follow from that list.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from html import escape

from core.tables import Cell, html_table, markdown_table
from publishing.charts import (
    PALETTE,
    Band,
    RangeRow,
    Series,
    funnel_chart,
    histogram,
    line_chart,
    range_dots,
    stacked_bars,
)
from publishing.report_data import (
    Attention,
    DataStatus,
    Funnel,
    Headline,
    PaymentsTimeliness,
    RedSites,
    Registry,
    Scorecard,
    StudyEnrollment,
    Trend,
)

#: How the report names and formats each KPI: label, unit, and what its denominator counts
#: (funnel plot x axes). Formulas live in the dbt project (docs/kpis.md); this is display text.
KPIS: dict[str, tuple[str, str, str]] = {
    "sites_activated_share": ("Sites activated", "share", "roster sites"),
    "on_time_activation": ("On-time activation", "share", "sites past planned date"),
    "activation_cycle_days": ("Activation cycle", "days", "sites"),
    "irb_approval_days": ("IRB approval", "days", "sites"),
    "contract_execution_days": ("Contract execution", "days", "sites"),
    "time_to_first_patient_days": ("Time to first patient", "days", "sites"),
    "enrollment_rate": ("Enrollment rate", "per site-month", "site-months active"),
    "percent_of_target": ("Randomized of target", "share", "target"),
    "screen_failure_rate": ("Screen failure rate", "share", "subjects screened"),
    "discontinuation_rate": ("Discontinuation rate", "share", "subjects randomized"),
    "non_enrolling_site": ("Non-enrolling sites", "share", "sites active 90+ days"),
    "deviations_per_visit": ("Deviations per visit", "per visit", "completed visits"),
    "important_deviation_rate": (
        "Important deviation rate",
        "per 1,000 subject-days",
        "subject-days",
    ),
    "important_deviation_share": ("Important deviation share", "share", "deviations"),
    "important_eligibility_deviations_per_randomized": (
        "Eligibility deviations per randomized",
        "per subject",
        "subjects randomized",
    ),
    "deviation_identification_days": ("Deviation identification", "days", "deviations"),
    "deviation_reporting_days": ("Deviation reporting", "days", "deviations"),
    "open_deviation_age_days": ("Open deviation age", "days", "open deviations"),
    "entry_lag_mean_days": ("Data-entry lag", "days", "entered visits"),
    "entry_lag_over_10d_share": ("Entered late (>10 d)", "share", "visits due for entry"),
    "payment_cycle_days": ("Payment cycle", "days", "paid lines"),
    "paid_within_terms_share": ("Paid within terms", "share", "paid lines"),
    "unpaid_over_90d_share": ("Unpaid > 90 days", "share", "unpaid amount"),
    "cost_per_randomized": ("Cost per randomized", "currency", "subjects randomized"),
    "crc_turnover": ("CRC turnover", "per year", "CRC headcount-years"),
    "sites_without_backup_crc": ("Sites without backup CRC", "share", "active sites"),
    "randomized_per_crc_fte": ("Randomized per CRC FTE", "per FTE", "CRC FTE"),
    "retroactive_changes": ("Retroactive changes", "count", "sites"),
}

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
svg .empty { font-size: 13px; fill: #757575; }
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
nav a { margin-right: 12px; font-size: 0.9rem; }
@media print { .charts { grid-template-columns: 1fr; } }
"""

#: Shown instead of a list table that has no rows.
NO_ROWS = '<p class="note">None.</p>'


@dataclass(frozen=True)
class SectionHtml:
    """A section's body and the ids of the charts in it, in page order."""

    html: str
    charts: tuple[str, ...] = ()


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
    """KPIs in KPIS order (unknown ones last, by id)."""
    return (list(KPIS).index(kpi) if kpi in KPIS else 999, kpi)


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    """A list table of the report ("None." when it has no rows)."""
    return html_table(header, rows, numeric=numeric, empty=NO_ROWS)


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
    """KPIs (columns, in KPIS order), SMOs (rows), the cell rows and each SMO's overall RAG."""
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


def _scorecard_cell(smo: str, kpi: str, r: dict | None, before) -> Cell | None:
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
    unit = KPIS.get(kpi, ("", "", ""))[1]
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
            f"{escape(KPIS.get(k, (k, '', ''))[0])}<br><small>{escape(KPIS.get(k, ('', '', ''))[1])}"
            "</small>",
            raw=True,
        )
        for k in kpis
    ]
    rows = []
    for smo in smos:
        rag = overall.get(smo) or ""
        kris = [
            _scorecard_cell(smo, k, cells.get((smo, k)), s.previous.get((smo, k))) for k in kpis
        ]
        rows.append([smo, _overall_cell(smo, s, rag), *kris])
    return SectionHtml(
        html_table(header, rows, table_class="scorecard")
        + '<p class="note">Cell colour: RAG against the KRI thresholds (seeds/kri_definitions.csv). '
        "Arrows: change since last week, green when better, red when worse; hover for last "
        "week's value.</p>"
        + '<p class="note legend">Grey <b>no data</b>: the SMO did not deliver what the KPI needs '
        "(a feed, or a column its format does not carry; hover for the reason), never counted as "
        "green. Overall <b>incomplete</b>: a feed or column the SMO is contracted to deliver "
        "(seeds/smo_feed_contracts.csv) is missing.</p>"
    )


def scorecard_markdown(s: Scorecard) -> str:
    """The scorecard for Dagster metadata: value (RAG) per SMO and KRI."""
    kpis, smos, cells, overall = _pivot(s)
    rows = [
        [smo, overall.get(smo) or ""]
        + [
            ""
            if (r := cells.get((smo, kpi))) is None
            else f"{_fmt(r['value'], KPIS.get(kpi, ('', '', ''))[1])} ({r['rag']})"
            for kpi in kpis
        ]
        for smo in smos
    ]
    return markdown_table(["SMO", "overall", *(KPIS.get(k, (k,))[0] for k in kpis)], rows)


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


def _kri(kri_id: str) -> tuple[str, str]:
    """A KRI's readable name and unit (KPIS), its id when unknown."""
    label, unit, _ = KPIS.get(kri_id, (kri_id, "", ""))
    return label, unit


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
    unit = _kri(r["kri_id"])[1]
    return {"low": f"value < {_value(red, unit)}", "both": f"|value| > {_value(red, unit)}"}.get(
        direction, f"value > {_value(red, unit)}"
    )


def _test(r: dict) -> str:
    """The flag's test: the z-score against its limit, or the value against the fixed limit."""
    if r["method"] == "funnel":
        return f"z = {_num(round(r['z_score'], 1))}, red at {_red_rule(r)}"
    return f"red at {_red_rule(r)}"


def _red_for(r: dict) -> str:
    weeks = r["weeks_red"]
    if weeks == 1:
        return "new this week"
    since = " (every published week)" if weeks == r["weeks_published"] else ""
    return f"red {weeks} weeks in a row{since}"


def red_flag_line(r: dict) -> str:
    """One red flag in one sentence: site, KRI, value against its study, the test, how long."""
    label, unit = _kri(r["kri_id"])
    score = "–" if r["risk_score"] is None else f"{r['risk_score']:.1f}/100"
    return (
        f"{r['site_id']} ({r['smo_id']}, {r['study_id']}): {label} {_value(r['value'], unit)} "
        f"vs {_value(r['group_value'], unit)} for its study ({_test(r)}; "
        f"{_num(r['numerator'])} of {_num(r['denominator'])}); {_red_for(r)}; "
        f"site risk score {score}"
    )


def qtl_line(q: dict) -> str:
    """One QTL exceedance in one sentence: study, parameter, value against its limit, status."""
    side = "above" if q["direction"] == "high" else "below"
    weeks = q["weeks_exceeded"]
    return (
        f"{q['study_id']}: QTL {q['description']} {_num(q['value'])} {side} the limit "
        f"{_num(q['limit_value'])} ({_num(q['numerator'])} of {_num(q['denominator'])}), "
        f"exceeded {weeks} week{'s' if weeks != 1 else ''} in a row; no evaluation recorded"
    )


def attention_items(a: Attention) -> list[tuple[str, str]]:
    """The needs-attention items as (kind, sentence), QTL exceedances first: the report's list
    and `make demo`'s summary."""
    return [("qtl", f"QTL exceeded, evaluation due: {qtl_line(q)}") for q in a.qtls_due] + [
        ("red-flag", f"New red flag: {red_flag_line(r)}") for r in a.new_red_flags
    ]


def needs_attention(a: Attention) -> SectionHtml:
    """One line per item a lead can act on this week."""
    items = "".join(
        f'<li data-attention="{kind}">{escape(line)}</li>' for kind, line in attention_items(a)
    )
    note = (
        '<p class="note">QTL exceedances with no evaluation recorded (a QTL oversight action '
        "closed as DONE, as published) and red site flags that were not red last week. "
        f"{a.persisting_red_flags} "
        'red flags persist from earlier weeks: see <a href="#red-sites">Sites with red flags</a>.'
        "</p>"
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
    sites = _table(
        ["site", "SMO", "study", "country", "risk score (0-100)", "from KRIs", "red KRIs",
         "amber KRIs"],
        [
            [r["site_id"], r["smo_id"], r["study_id"], r["country"] or "",
             "–" if r["risk_score"] is None else f"{r['risk_score']:.1f}", _kris_with_data(r),
             ", ".join(_kri(k)[0] for k in (r["red_kris"] or "").split(", ") if k),
             ", ".join(_kri(k)[0] for k in (r["amber_kris"] or "").split(", ") if k)]
            for r in red.sites
        ],
        {4, 5},
    )  # fmt: skip
    rows = []
    for r in red.flags:
        key = f"{r['smo_id']}|{r['study_id']}|{r['site_id']}|{r['kri_id']}"
        label, unit = _kri(r["kri_id"])
        z = r["z_score"] if r["method"] == "funnel" else None
        rows.append([
            r["site_id"], r["smo_id"], r["study_id"],
            Cell(f"{escape(label)}<br><small>{escape(unit)}</small>", raw=True,
                 attrs={"title": r["kri_id"], "data-flag": key}),
            _flag_cell(key, "value", _short(r["value"], unit), r["value"]),
            _flag_cell(key, "group_value", _short(r["group_value"], unit), r["group_value"]),
            _flag_cell(key, "z_score", "–" if z is None else _num(round(z, 1)), z),
            _flag_cell(key, "red_threshold", _red_rule(r), r["red_threshold"]),
            _flag_cell(key, "numerator", _num(r["numerator"]), r["numerator"]),
            _flag_cell(key, "denominator", _num(r["denominator"]), r["denominator"]),
            _flag_cell(key, "weeks_red", "new this week" if r["weeks_red"] == 1
                       else f"{r['weeks_red']} weeks", r["weeks_red"]),
        ])  # fmt: skip
    flags = _table(
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
            "red for",
        ],
        rows,
        {4, 5, 6, 8, 9},
    )
    return SectionHtml(
        sites
        + f'<p class="note">{escape(RISK_SCALE)}</p>'
        + f"<h3>Red flags this week ({len(red.flags)})</h3>"
        + '<p class="note">Each site is compared with the sites of its study: the study value '
        "is their pooled rate (all numerators over all denominators). Funnel KRIs are red when the over-dispersion-adjusted "
        "z-score passes the limit, fixed KRIs when the value does (seeds/kri_definitions.csv). "
        "'Red for': the weeks in a row, up to this one, the flag has been red.</p>" + flags
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
    return SectionHtml(
        _table(
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
        + '<p class="note">Study-level quality tolerance limits (ICH E6(R3) 3.10.1.3, seed '
        "qtl_definitions). An exceedance needs a recorded evaluation (the sponsor's QTL oversight "
        "action, closed with its outcome); "
        "'no data' means the study has no value for the parameter yet.</p>"
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


# -- funnel plots -------------------------------------------------------------------------------


def funnels(plots: list[Funnel]) -> SectionHtml:
    """One funnel plot per KRI, in KPIS order."""
    charts = []
    for f in sorted(plots, key=lambda f: _kpi_order(f.kri_id)):
        label, unit, denominator = KPIS.get(f.kri_id, (f.kri_id, "", "denominator"))
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
        label, unit, _ = KPIS[kpi]
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


def page(meta: dict, top: Headline, sections: list[tuple[str, str, SectionHtml]]) -> str:
    """The whole report: title, publish line, navigation, then each (key, title, body) section."""
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{content.html}</section>'
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
