"""The oversight report's data: one function per report section, reading the published BI file.

Each section function takes a read-only connection to the published BI database (never the
warehouse) and returns plain rows (dicts, one per row, keyed by column name) or a small dataclass
of them: what the section shows, with no HTML. `publishing/report_html.py` turns each into HTML
and `publishing/report.py` lists the sections, each as one function here plus one there.

To add a section: write its function here (`def my_section(con) -> MyRows`, querying only the
published marts, latest week via `_latest`), its renderer in report_html.py, and add
`Section(key, title, report_data.my_section, report_html.my_section)` to `SECTIONS` in report.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb

Connection = duckdb.DuckDBPyConnection


def _latest(table: str, where: str = "") -> str:
    cond = f" and {where}" if where else ""
    return f"from {table} where as_of_date = (select max(as_of_date) from {table}){cond}"


def _rows(con: Connection, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def meta(con: Connection) -> dict:
    """The publish's one meta row: publish id, timestamps, versions, deliveries included."""
    return _rows(con, "select * from meta")[0]


# -- summary ------------------------------------------------------------------------------------


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


def headline(con: Connection) -> Headline:
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


# -- scorecard ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scorecard:
    """smo_scorecard's latest week (rows with a RAG, by SMO and KPI) and last week's values."""

    current: list[dict]
    previous: dict[tuple[str, str], float | None]


def scorecard(con: Connection) -> Scorecard:
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
    return Scorecard(
        current=[r for r in rows if r["age"] == 1],
        previous={(r["smo_id"], r["kpi_id"]): r["value"] for r in rows if r["age"] == 2},
    )


# -- red sites ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedSites:
    """The 15 riskiest sites with a red flag this week (site_risk_scores rows) and every red
    within-study flag this week (site_flags rows plus `weeks_red`, `weeks_published`)."""

    sites: list[dict]
    flags: list[dict]


def red_flags(con: Connection) -> list[dict]:
    """Every red site flag of the latest week (within the study), with its site's risk score and
    `weeks_red`: how many weeks in a row, up to this one, the flag has been red (1 = new this
    week), counted over site_flags' weekly rows; `weeks_published` is how many weeks there are."""
    return _rows(
        con,
        """
        with weeks as (
            select as_of_date, row_number() over (order by as_of_date desc) as age
            from (select distinct as_of_date from site_flags)
        ),
        red as (
            select f.smo_id, f.study_id, f.site_id, f.kri_id, w.age,
                   row_number() over (
                       partition by f.smo_id, f.study_id, f.site_id, f.kri_id order by w.age
                   ) as nth
            from site_flags as f join weeks as w using (as_of_date)
            where f.comparison_group = 'study' and f.flag = 'red'
        ),
        streaks as (
            -- the run of red weeks that includes the latest week: age 1, 2, ... without a gap
            select smo_id, study_id, site_id, kri_id, count(*) as weeks_red
            from red where age = nth group by all
        )
        select f.*, s.weeks_red, (select count(*) from weeks) as weeks_published,
               r.risk_score, r.kris_with_data
        from site_flags as f
        join weeks as w on w.as_of_date = f.as_of_date and w.age = 1
        join streaks as s
            on s.smo_id = f.smo_id and s.study_id = f.study_id and s.site_id = f.site_id
            and s.kri_id = f.kri_id
        left join site_risk_scores as r
            on r.as_of_date = f.as_of_date and r.smo_id = f.smo_id and r.study_id = f.study_id
            and r.site_id = f.site_id
        where f.comparison_group = 'study' and f.flag = 'red'
        order by r.risk_score desc nulls last, f.smo_id, f.study_id, f.site_id, f.kri_id
        """,
    )


def red_sites(con: Connection) -> RedSites:
    sites = _rows(
        con,
        "select * "
        + _latest("site_risk_scores", "red_flags > 0")
        + " order by risk_score desc, site_id limit 15",
    )
    return RedSites(sites, red_flags(con))


# -- quality tolerance limits -------------------------------------------------------------------


def qtls(con: Connection) -> list[dict]:
    """Every study's QTLs this week (study_qtls rows): value against the limit, status and the
    recorded evaluation, exceedances first; `weeks_exceeded` counts the weeks in a row, up to
    this one, that the QTL has been above (or below) its limit."""
    return _rows(
        con,
        """
        with weeks as (
            select as_of_date, row_number() over (order by as_of_date desc) as age
            from (select distinct as_of_date from study_qtls)
        ),
        exceeded as (
            select q.study_id, q.qtl_id, w.age,
                   row_number() over (partition by q.study_id, q.qtl_id order by w.age) as nth
            from study_qtls as q join weeks as w using (as_of_date)
            where q.is_exceeded
        ),
        streaks as (
            select study_id, qtl_id, count(*) as weeks_exceeded
            from exceeded where age = nth group by all
        )
        select q.*, coalesce(s.weeks_exceeded, 0) as weeks_exceeded
        from study_qtls as q
        join weeks as w on w.as_of_date = q.as_of_date and w.age = 1
        left join streaks as s using (study_id, qtl_id)
        order by q.is_exceeded desc, q.qtl_status, q.study_id, q.qtl_id
        """,
    )


# -- needs attention ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attention:
    """What a lead should act on this week: red flags new this week, and QTL exceedances with no
    recorded evaluation (study_qtls status `exceeded_evaluation_due`)."""

    new_red_flags: list[dict]
    qtls_due: list[dict]
    #: red flags this week that were already red last week (listed under red sites)
    persisting_red_flags: int = 0


def needs_attention(con: Connection) -> Attention:
    flags = red_flags(con)
    return Attention(
        new_red_flags=[r for r in flags if r["weeks_red"] == 1],
        qtls_due=[r for r in qtls(con) if r["qtl_status"] == "exceeded_evaluation_due"],
        persisting_red_flags=sum(1 for r in flags if r["weeks_red"] > 1),
    )


# -- enrollment ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyEnrollment:
    """One study: its forecast row, cumulative randomized per week, the forecast fan."""

    forecast: dict
    actual: list[dict]
    fan: list[dict]


def enrollment(con: Connection) -> list[StudyEnrollment]:
    forecasts = _rows(con, "select * " + _latest("enrollment_forecast") + " order by study_id")
    studies = []
    for f in forecasts:
        study = f["study_id"]
        actual = _rows(
            con,
            # Cumulative randomized: enrollment_rate's numerator needs only the subjects feed
            # (percent_of_target's is NULL for a study whose roster has no targets).
            "select as_of_date, numerator from kpi_weekly_history where level = 'study' "
            "and kpi_id = 'enrollment_rate' and study_id = ? order by as_of_date",
            [study],
        )
        fan = _rows(
            con,
            "select forecast_date, randomized_p10, randomized_p50, randomized_p90 "
            "from enrollment_forecast_path where study_id = ? order by weeks_ahead",
            [study],
        )
        studies.append(StudyEnrollment(f, actual, fan))
    return studies


# -- funnel plots -------------------------------------------------------------------------------


def funnel_limit(
    n: float, z: float, rate: float, phi: float, multiplier: float, kri_type: str
) -> float:
    """The funnel's control limit at denominator n, in the KPI's units: the group rate plus z
    over-dispersed standard errors (binary: p(1-p)/n, rate: r/n), as dbt's funnel_flags macro."""
    var = rate * (1 - rate) / n if kri_type == "binary" else rate / n
    return (rate + z * math.sqrt(phi * var)) * multiplier


@dataclass(frozen=True)
class Funnel:
    """One KRI's portfolio funnel plot: the sites plotted (site_flags rows with a z-score), the
    centre line, the over-dispersion φ and the 2σ/3σ limit curves as (denominator, value)."""

    kri_id: str
    plotted: list[dict]
    centre: float
    phi: float
    limits: dict[str, list[tuple[float, float]]]


def funnels(con: Connection) -> list[Funnel]:
    """One funnel per KRI with portfolio funnel flags this week, by KRI id."""
    rows = _rows(
        con,
        "select * "
        + _latest("site_flags", "comparison_group = 'portfolio' and method = 'funnel'")
        + " order by kri_id, site_id",
    )
    result = []
    for kri in sorted({r["kri_id"] for r in rows}):
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
        result.append(Funnel(kri, plotted, centre, phi, limits))
    return result


# -- protocol deviations ------------------------------------------------------------------------

#: The SMO-level KPIs the deviations section plots week by week.
TREND_KPIS = ("important_deviation_rate", "deviations_per_visit")


@dataclass(frozen=True)
class Trend:
    """One KPI's weekly value per SMO (kpi_weekly_history rows, by SMO then week)."""

    kpi_id: str
    rows: list[dict]
    #: SMOs with no data for the KPI in the latest week, with the reason (smo_id, reason).
    no_data: list[dict] = field(default_factory=list)


def deviation_trends(con: Connection) -> list[Trend]:
    return [
        Trend(
            kpi,
            _rows(
                con,
                "select as_of_date, smo_id, value from kpi_weekly_history where level = 'smo' "
                "and kpi_id = ? and value is not null order by smo_id, as_of_date",
                [kpi],
            ),
            _rows(
                con,
                "select smo_id, no_data_reason as reason "
                + _latest("kpi_weekly_history", "level = 'smo' and kpi_id = ?")
                + " and no_data_reason is not null order by smo_id",
                [kpi],
            ),
        )
        for kpi in TREND_KPIS
    ]


# -- payments and data timeliness ---------------------------------------------------------------


@dataclass(frozen=True)
class PaymentsTimeliness:
    """Unpaid amounts per SMO by age bucket (b0: 0-30 days .. b3: over 90) and the mean data-
    entry lag of every site with entered visits."""

    payment_aging: list[dict]
    entry_lags: list[float]
    #: SMOs with no payments or no data-entry data at all, with the reason (smo_id, reason).
    no_data: list[dict] = field(default_factory=list)


def payments_timeliness(con: Connection) -> PaymentsTimeliness:
    aging = _rows(
        con,
        "select smo_id, any_value(reporting_currency) as currency, sum(unpaid_0_30) as b0, "
        "sum(unpaid_31_60) as b1, sum(unpaid_61_90) as b2, sum(unpaid_over_90) as b3 "
        + _latest("site_payments", "payment_lines is not null")
        + " group by smo_id order by smo_id",
    )
    no_data = _rows(
        con,
        "select smo_id, 'payments: ' || string_agg(distinct no_data_reason, '; ') as reason "
        + _latest("site_payments")
        + " group by smo_id having count(payment_lines) = 0"
        " union all "
        "select smo_id, 'entry lag: ' || string_agg(distinct no_data_reason, '; ') "
        + _latest("site_data_timeliness")
        + " group by smo_id having count(entry_lag_mean_days) = 0 and count(no_data_reason) > 0"
        " order by 1, 2",
    )
    lags = [
        v
        for (v,) in con.execute(
            "select entry_lag_mean_days "
            + _latest("site_data_timeliness", "entry_lag_mean_days is not null")
        ).fetchall()
    ]
    return PaymentsTimeliness(aging, lags, no_data)


# -- registry -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """Each study's enrollment rate against its registry peers, and the hygiene findings."""

    benchmark: list[dict]
    hygiene: list[dict]


def registry(con: Connection) -> Registry:
    return Registry(
        benchmark=_rows(
            con,
            "select * " + _latest("registry_benchmark", "level = 'study'") + " order by study_id",
        ),
        hygiene=_rows(
            con,
            "select * " + _latest("registry_hygiene") + " order by finding, study_id, site_id",
        ),
    )


# -- data status --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataStatus:
    """Feed freshness per SMO and feed, the newest 25 rejected deliveries, and the newest 25 of
    `changes_total` retroactive changes."""

    freshness: list[dict]
    rejected: list[dict]
    changes_total: int
    changes: list[dict]


def data_status(con: Connection) -> DataStatus:
    freshness = _rows(con, "select * " + _latest("feed_freshness") + " order by smo_id, feed")
    rejected = _rows(
        con,
        "select * from delivery_log where status = 'REJECTED' "
        "order by delivery_date desc nulls last, delivery_id desc limit 25",
    )
    (changes_total,) = con.execute("select count(*) from retroactive_changes").fetchall()[0]
    changes = _rows(
        con,
        "select * from retroactive_changes order by delivery_date desc, smo_id, study_id, "
        "site_id, record_key, field limit 25",
    )
    return DataStatus(freshness, rejected, changes_total, changes)
