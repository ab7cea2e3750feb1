"""The weekly oversight report: one self-contained HTML file per publish.

Every number is read from the published BI database (never the warehouse), so the report shows
exactly what BI tools show and only data that passed every gate. Charts are static SVG
(publishing/charts.py): the file opens offline, with nothing to fetch. Written beside the BI file
as `oversight-report.html` (the latest, replaced atomically) and `reports/<publish id>.html`
(the last N kept, like the BI file's history).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path

import duckdb

from publishing.bi_database import published_path
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

REPORT_NAME = "oversight-report.html"
REPORTS_DIR = "reports"

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
.arrow { font-size: 0.8em; margin-left: 4px; } .better { color: #2e7d32; } .worse { color: #c62828; }
.stale { color: #c62828; font-weight: 600; }
.note { color: #616161; font-size: 0.85rem; }
nav a { margin-right: 12px; font-size: 0.9rem; }
@media print { .charts { grid-template-columns: 1fr; } }
"""


@dataclass(frozen=True)
class Headline:
    """The report's summary numbers; each is also a data-metric element of the page."""

    as_of_date: str
    studies: int
    sites_in_roster: int
    sites_activated: int
    randomized: int
    target: int
    red_flags: int
    red_flag_sites: int
    deliveries_rejected_this_week: int
    stale_feeds: int


@dataclass(frozen=True)
class ReportResult:
    publish_id: str
    path: Path
    latest: Path
    headline: Headline
    charts: list[str]
    scorecard_markdown: str


def _latest(table: str, where: str = "") -> str:
    cond = f" and {where}" if where else ""
    return f"from {table} where as_of_date = (select max(as_of_date) from {table}){cond}"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


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


def _text(value) -> str:
    return "" if value is None else str(value)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    if not rows:
        return '<p class="note">None.</p>'
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def headline(con: duckdb.DuckDBPyConnection) -> Headline:
    """The summary numbers, straight from the published marts' latest week."""
    (as_of,) = con.execute("select max(as_of_date) from study_enrollment").fetchall()[0]
    studies, roster, activated = con.execute(
        "select count(*), coalesce(sum(sites_in_roster), 0), coalesce(sum(sites_activated), 0) "
        + _latest("study_enrollment")
    ).fetchall()[0]
    randomized, target = con.execute(
        "select coalesce(sum(randomized_to_date), 0), coalesce(sum(target_enrollment), 0) "
        + _latest("enrollment_forecast")
    ).fetchall()[0]
    red, red_sites = con.execute(
        "select count(*), count(distinct (smo_id, study_id, site_id)) "
        + _latest("site_flags", "comparison_group = 'study' and flag = 'red'")
    ).fetchall()[0]
    (rejected,) = con.execute(
        "select count(*) from delivery_log where status = 'REJECTED' "
        "and delivery_date > ?::date - 7 and delivery_date <= ?::date",
        [as_of, as_of],
    ).fetchall()[0]
    (stale,) = con.execute("select count(*) " + _latest("feed_freshness", "is_stale")).fetchall()[0]
    return Headline(
        as_of_date=str(as_of),
        studies=int(studies),
        sites_in_roster=int(roster),
        sites_activated=int(activated),
        randomized=int(randomized),
        target=int(target),
        red_flags=int(red),
        red_flag_sites=int(red_sites),
        deliveries_rejected_this_week=int(rejected),
        stale_feeds=int(stale),
    )


def _summary_html(h: Headline) -> str:
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
    return f'<div class="headline">{cards}</div>'


def _scorecard(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """HTML and Markdown of the SMO scorecard: RAG per KRI with the week-on-week change."""
    rows = _rows(
        con,
        """
        with weeks as (
            select as_of_date, dense_rank() over (order by as_of_date desc) as age
            from (select distinct as_of_date from smo_scorecard)
        )
        select s.*, w.age from smo_scorecard as s join weeks as w using (as_of_date)
        where w.age <= 2 and s.rag is not null
        order by s.smo_id, s.kpi_id
        """,
    )
    current = [r for r in rows if r["age"] == 1]
    previous = {(r["smo_id"], r["kpi_id"]): r["value"] for r in rows if r["age"] == 2}
    kpis = sorted({r["kpi_id"] for r in current}, key=lambda k: list(KPIS).index(k)
                  if k in KPIS else 999)  # fmt: skip
    smos = sorted({r["smo_id"] for r in current})
    cells = {(r["smo_id"], r["kpi_id"]): r for r in current}
    overall = {r["smo_id"]: r["overall_rag"] for r in current}
    head = "".join(
        f"<th>{escape(KPIS.get(k, (k, '', ''))[0])}<br><small>{escape(KPIS.get(k, ('', '', ''))[1])}"
        "</small></th>"
        for k in kpis
    )
    body, md = [], ["| SMO | overall | " + " | ".join(KPIS.get(k, (k,))[0] for k in kpis) + " |"]
    md.append("|---" * (len(kpis) + 2) + "|")
    for smo in smos:
        tds, md_cells = [], []
        for kpi in kpis:
            r = cells.get((smo, kpi))
            if r is None:
                tds.append("<td></td>")
                md_cells.append("")
                continue
            unit = KPIS.get(kpi, ("", "", ""))[1]
            before = previous.get((smo, kpi))
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
            tds.append(
                f'<td class="num rag-{escape(r["rag"])}" data-smo="{escape(smo)}" '
                f'data-kpi="{escape(kpi)}" data-rag="{escape(r["rag"])}">'
                f"{_fmt(r['value'], unit)}{arrow}</td>"
            )
            md_cells.append(f"{_fmt(r['value'], unit)} ({r['rag']})")
        rag = overall.get(smo) or ""
        body.append(
            f"<tr><td>{escape(smo)}</td><td class='rag-{escape(rag)}'>{escape(rag)}</td>"
            + "".join(tds)
            + "</tr>"
        )
        md.append(f"| {smo} | {rag} | " + " | ".join(md_cells) + " |")
    html = (
        '<table class="scorecard"><thead><tr><th>SMO</th><th>overall</th>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        '<p class="note">Cell colour: RAG against the KRI thresholds (seeds/kri_definitions.csv). '
        "Arrows: change since last week, green when better, red when worse; hover for last "
        "week's value.</p>"
    )
    return html, "\n".join(md)


def _study_charts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    forecasts = _rows(con, "select * " + _latest("enrollment_forecast") + " order by study_id")
    charts = []
    for i, f in enumerate(forecasts):
        study = f["study_id"]
        actual = _rows(
            con,
            "select as_of_date, numerator from kpi_weekly_history where level = 'study' "
            "and kpi_id = 'percent_of_target' and study_id = ? order by as_of_date",
            [study],
        )
        fan = _rows(
            con,
            "select forecast_date, randomized_p10, randomized_p50, randomized_p90 "
            "from enrollment_forecast_path where study_id = ? order by weeks_ahead",
            [study],
        )
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
    return charts


def funnel_limit(
    n: float, z: float, rate: float, phi: float, multiplier: float, kri_type: str
) -> float:
    """The funnel's control limit at denominator n, in the KPI's units: the group rate plus z
    over-dispersed standard errors (binary: p(1-p)/n, rate: r/n), as dbt's funnel_flags macro."""
    var = rate * (1 - rate) / n if kri_type == "binary" else rate / n
    return (rate + z * math.sqrt(phi * var)) * multiplier


def _funnel_charts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    rows = _rows(
        con,
        "select * "
        + _latest("site_flags", "comparison_group = 'portfolio' and method = 'funnel'")
        + " order by kri_id, site_id",
    )
    charts = []
    for kri in sorted({r["kri_id"] for r in rows}, key=lambda k: list(KPIS).index(k)
                      if k in KPIS else 999):  # fmt: skip
        group = [r for r in rows if r["kri_id"] == kri]
        usable = [r for r in group if (r["denominator"] or 0) > 0]
        total_num = sum(r["numerator"] or 0 for r in usable)
        total_den = sum(r["denominator"] for r in usable)
        rate = total_num / total_den if total_den else 0.0
        centre = group[0]["group_value"] or 0.0
        multiplier = centre / rate if rate else 1.0
        phi = group[0]["overdispersion"] or 1.0
        kri_type = group[0]["kri_type"]
        plotted = [r for r in group if r["z_score"] is not None]
        label, unit, denominator = KPIS.get(kri, (kri, "", "denominator"))
        xs = [r["denominator"] for r in plotted] or [1.0]
        low_n = max(min(xs) * 0.8, group[0]["min_denominator"] or 0.1, 1e-3)
        high_n = max(xs) * 1.05
        grid = [low_n + (high_n - low_n) * k / 60 for k in range(61)]

        limits = {
            f"{name} {side}": [
                (n, max(funnel_limit(n, z, rate, phi, multiplier, kri_type), 0.0)) for n in grid
            ]
            for name, k in (("3σ", 3), ("2σ", 2))
            for side, z in (("upper", k), ("lower", -k))
        }
        points = [
            (r["denominator"], r["value"], f"{r['site_id']}", r["flag"] or "") for r in plotted
        ]
        flagged = sum(1 for r in plotted if r["flag"] in ("red", "amber"))
        chart_id = f"funnel-{kri.replace('_', '-')}"
        charts.append(
            (
                chart_id,
                funnel_chart(
                    chart_id,
                    f"{label}: sites vs portfolio (funnel)",
                    f"denominator ({denominator})",
                    f"{label} ({unit})",
                    points,
                    limits,
                    centre,
                    note=f"{len(plotted)} sites at or above the minimum denominator; over-"
                    f"dispersion φ = {phi:.2f}; {flagged} flagged (labelled). Limits are "
                    "portfolio rate ± 2 and 3 σ·√φ.",
                ),
            )
        )
    return charts


def _trend_charts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    charts = []
    for kpi in ("important_deviation_rate", "deviations_per_visit"):
        rows = _rows(
            con,
            "select as_of_date, smo_id, value from kpi_weekly_history where level = 'smo' "
            "and kpi_id = ? and value is not null order by smo_id, as_of_date",
            [kpi],
        )
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
                ),
            )
        )
    return charts


def _payment_chart(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    rows = _rows(
        con,
        "select smo_id, any_value(reporting_currency) as currency, sum(unpaid_0_30) as b0, "
        "sum(unpaid_31_60) as b1, sum(unpaid_61_90) as b2, sum(unpaid_over_90) as b3 "
        + _latest("site_payments")
        + " group by smo_id order by smo_id",
    )
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


def _entry_lag_chart(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    values = [
        v
        for (v,) in con.execute(
            "select entry_lag_mean_days "
            + _latest("site_data_timeliness", "entry_lag_mean_days is not null")
        ).fetchall()
    ]
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


def _benchmark_chart(con: duckdb.DuckDBPyConnection) -> tuple[str, str, list[dict]]:
    rows = _rows(
        con,
        "select * " + _latest("registry_benchmark", "level = 'study'") + " order by study_id",
    )
    chart = range_dots(
        "registry-benchmark",
        "Enrollment rate vs registry peers",
        "enrollment rate (randomized per site-month)",
        "study",
        [
            RangeRow(
                r["study_id"],
                r["peer_p25_rate"],
                r["peer_median_rate"],
                r["peer_p75_rate"],
                r["enrollment_rate"],
                annotation=f"(P{r['peer_percentile']:.0f} of {r['peer_studies']} peers)"
                if r["peer_percentile"] is not None
                else "(no peers)",
            )
            for r in rows
        ],
        note="Peers: completed or active registry studies of the same condition and phase.",
    )
    return "registry-benchmark", chart, rows


def _data_status(con: duckdb.DuckDBPyConnection) -> str:
    freshness = _rows(con, "select * " + _latest("feed_freshness") + " order by smo_id, feed")
    feeds = sorted({r["feed"] for r in freshness})
    by_smo: dict[str, dict[str, dict]] = {}
    for r in freshness:
        by_smo.setdefault(r["smo_id"], {})[r["feed"]] = r

    def cell(r: dict | None) -> str:
        if r is None:
            return "<td></td>"
        age = "never" if r["age_days"] is None else f"{r['age_days']} d"
        rejected = (
            f" · {r['rejected_since_last_accepted']} rejected"
            if r["rejected_since_last_accepted"]
            else ""
        )
        return (
            f'<td class="num{" stale" if r["is_stale"] else ""}" data-smo="{escape(r["smo_id"])}" '
            f'data-feed="{escape(r["feed"])}" data-stale="{str(r["is_stale"]).lower()}" '
            f'title="last accepted {r["last_accepted_delivery_date"] or "never"}">'
            f"{age}{rejected}</td>"
        )

    fresh_table = (
        "<table><thead><tr><th>SMO</th>"
        + "".join(f'<th class="num">{escape(f)}</th>' for f in feeds)
        + "</tr></thead><tbody>"
        + "".join(
            f"<tr><td>{escape(smo)}</td>" + "".join(cell(cells.get(f)) for f in feeds) + "</tr>"
            for smo, cells in sorted(by_smo.items())
        )
        + "</tbody></table>"
    )
    limit = freshness[0]["stale_after_days"] if freshness else "–"
    rejected = _rows(
        con,
        "select * from delivery_log where status = 'REJECTED' "
        "order by delivery_date desc nulls last, delivery_id desc limit 25",
    )
    rejected_rows = [
        [escape(str(r["delivery_date"] or "")), escape(r["smo_id"]), escape(r["feed"] or ""),
         escape(r["file_name"]), escape(r["rejection_reasons"] or "")]
        for r in rejected
    ]  # fmt: skip
    (changes_total,) = con.execute("select count(*) from retroactive_changes").fetchall()[0]
    changes = _rows(
        con,
        "select * from retroactive_changes order by delivery_date desc, smo_id, study_id, "
        "site_id, record_key, field limit 25",
    )
    change_rows = [
        [escape(str(r["delivery_date"])), escape(r["smo_id"]), escape(r["study_id"] or ""),
         escape(r["site_id"] or ""), escape(r["feed"]), escape(r["record_key"] or ""),
         escape(r["change_kind"]), escape(r["field"] or ""), escape(_text(r["old_value"])),
         escape(_text(r["new_value"]))]
        for r in changes
    ]  # fmt: skip
    return (
        "<h3>Age of the last accepted delivery, per SMO and feed</h3>"
        f'<p class="note">A feed is stale when its newest accepted delivery is more than '
        f"{limit} days older than the as-of date (SMO_STALE_FEED_AFTER_DAYS); stale feeds are in "
        "red. Hover a cell for the delivery date.</p>"
        + fresh_table
        + f"<h3>Rejected deliveries ({len(rejected)} shown, newest first)</h3>"
        + _table(["delivery date", "SMO", "feed", "file", "reasons"], rejected_rows)
        + f"<h3>Retroactive changes detected ({changes_total}; newest 25 shown)</h3>"
        + _table(
            [
                "delivered",
                "SMO",
                "study",
                "site",
                "feed",
                "record",
                "change",
                "field",
                "old",
                "new",
            ],
            change_rows,
        )  # fmt: skip
    )


def _red_sites(con: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(
        con,
        "select * "
        + _latest("site_risk_scores", "red_flags > 0")
        + " order by risk_score desc, site_id limit 15",
    )
    return _table(
        ["site", "SMO", "study", "country", "risk score", "red KRIs", "amber KRIs"],
        [
            [escape(r["site_id"]), escape(r["smo_id"]), escape(r["study_id"]),
             escape(r["country"] or ""), f"{r['risk_score']:.1f}", escape(r["red_kris"] or ""),
             escape(r["amber_kris"] or "")]
            for r in rows
        ],
        {4},
    )  # fmt: skip


def _hygiene(con: duckdb.DuckDBPyConnection) -> str:
    rows = _rows(
        con, "select * " + _latest("registry_hygiene") + " order by finding, study_id, site_id"
    )
    return _table(
        ["finding", "study", "NCT id", "SMO", "site", "roster", "registry"],
        [
            [escape(r["finding"]), escape(r["study_id"] or ""), escape(r["nct_id"] or ""),
             escape(r["smo_id"] or ""), escape(r["site_id"] or ""),
             escape(str(r["roster_value"] or "")), escape(str(r["registry_value"] or ""))]
            for r in rows
        ],
    )  # fmt: skip


def render(published: Path) -> tuple[str, str, Headline, list[str], str]:
    """The publish id, the report's HTML, its headline, the chart ids and the scorecard as
    Markdown."""
    with duckdb.connect(str(published), read_only=True) as con:
        meta = _rows(con, "select * from meta")[0]
        top = headline(con)
        scorecard_html, scorecard_md = _scorecard(con)
        studies = _study_charts(con)
        funnels = _funnel_charts(con)
        trends = _trend_charts(con)
        payments = _payment_chart(con)
        entry_lag = _entry_lag_chart(con)
        bench_id, bench_chart, bench_rows = _benchmark_chart(con)
        data_status = _data_status(con)
        red_sites = _red_sites(con)
        hygiene = _hygiene(con)
    charts = [*studies, *funnels, *trends, payments, entry_lag, (bench_id, bench_chart)]
    bench_table = _table(
        ["study", "NCT id", "rate", "peers", "peer P25", "peer median", "peer P75", "percentile"],
        [
            [escape(r["study_id"]), escape(r["nct_id"] or ""), _fmt(r["enrollment_rate"]),
             str(r["peer_studies"]), _fmt(r["peer_p25_rate"]), _fmt(r["peer_median_rate"]),
             _fmt(r["peer_p75_rate"]), _fmt(r["peer_percentile"])]
            for r in bench_rows
        ],
        {2, 3, 4, 5, 6, 7},
    )  # fmt: skip

    def grid(items: list[tuple[str, str]]) -> str:
        return '<div class="charts">' + "".join(svg for _, svg in items) + "</div>"

    sections = [
        ("summary", "Portfolio summary", _summary_html(top)),
        ("scorecard", "SMO scorecard", scorecard_html),
        ("red-sites", "Sites with red flags", red_sites),
        ("enrollment", "Enrollment against plan and forecast", grid(studies)),
        ("funnels", "Central monitoring: funnel plots per KRI", grid(funnels)),
        ("deviations", "Protocol deviations", grid(trends)),
        ("payments-timeliness", "Payments and data timeliness", grid([payments, entry_lag])),
        ("registry", "Registry benchmark and hygiene",
         grid([(bench_id, bench_chart)]) + bench_table + "<h3>Registry hygiene findings</h3>"
         + hygiene),
        ("data-status", "Data status", data_status),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{escape(title)}</h2>{content}</section>'
        for key, title, content in sections
    )
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>SMO oversight report, as of {escape(top.as_of_date)}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>SMO oversight report, as of {escape(top.as_of_date)}</h1>"
        f'<p class="meta">Publish {escape(meta["publish_id"])} · published '
        f"{escape(str(meta['published_at']))[:19]} UTC · code {escape(str(meta['code_version']))}"
        f" · KRI definitions {escape(str(meta['kri_definitions_version']))} · "
        f"{meta['deliveries_included']} deliveries · registry data "
        f"{escape(str(meta['registry_data_timestamp'] or 'not fetched'))}. "
        "Every number comes from the published marts, which passed the delivery, warehouse and "
        "publish gates.</p>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )
    return meta["publish_id"], html, top, [chart_id for chart_id, _ in charts], scorecard_md


def _write_atomic(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text, encoding="utf-8")
    with open(temp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, path)


def write_report(publish_dir: Path, *, keep: int) -> ReportResult:
    """Render the current publish and write it beside the BI file; keep the last `keep`."""
    publish_id, html, top, charts, scorecard_md = render(published_path(publish_dir))
    folder = publish_dir / REPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"oversight-report-{publish_id}.html"
    _write_atomic(path, html)
    latest = publish_dir / REPORT_NAME
    _write_atomic(latest, html)
    for old in sorted(folder.glob("oversight-report-*.html"))[:-keep]:
        old.unlink(missing_ok=True)
    return ReportResult(publish_id, path, latest, top, charts, scorecard_md)


def headline_markdown(top: Headline) -> str:
    return "| measure | value |\n|---|---|\n" + "\n".join(
        f"| {name.replace('_', ' ')} | {value} |" for name, value in asdict(top).items()
    )


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
