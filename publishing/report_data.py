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


@dataclass(frozen=True)
class KpiLabel:
    """How the report names a KRI's KPI: readable name, unit and what its denominator counts,
    as the published KRI definitions (marts.kri_catalog) say."""

    label: str
    unit: str
    denominator: str


def kpi_labels(con: Connection, level: str) -> dict[str, KpiLabel]:
    """Each KRI's KPI (by kpi_id) as kri_catalog names it, the `level` ('site' or 'smo') row
    where the KPI has one: the report never names a KPI from code."""
    rows = con.execute(
        "select kpi_id, label, unit, denominator_label from kri_catalog "
        "order by level = ?, level, kri_id",
        [level],
    ).fetchall()
    return {kpi: KpiLabel(label, unit, denominator) for kpi, label, unit, denominator in rows}


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
    labels: dict[str, KpiLabel] = field(default_factory=dict)


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
        labels=kpi_labels(con, "smo"),
    )


# -- red sites ----------------------------------------------------------------------------------


def kri_labels(con: Connection) -> dict[str, KpiLabel]:
    """Each site KRI (by kri_id) as the published KRI definitions (kri_catalog) name it."""
    rows = con.execute(
        "select kri_id, label, unit, denominator_label from kri_catalog where level = 'site'"
    ).fetchall()
    return {kri: KpiLabel(label, unit, denominator) for kri, label, unit, denominator in rows}


@dataclass(frozen=True)
class RedSites:
    """The 15 riskiest sites with a red flag this week (site_risk_scores rows), every red
    within-study flag this week (see `red_flags`) and the site KRIs' labels."""

    sites: list[dict]
    flags: list[dict]
    labels: dict[str, KpiLabel] = field(default_factory=dict)


def red_flags(con: Connection) -> list[dict]:
    """Every red site flag of the latest week (within the study): the site_flags row with its
    KRI's `kri_label` and `kri_unit` (kri_catalog), where its episode stands (flag_status:
    `flag_status` new or persisting, `flag_age_weeks`, `first_flagged_week`; an episode is the
    run of weeks flagged amber or red), the site's risk score and `open_action` (see
    `oversight_actions`)."""
    rows = _rows(
        con,
        """
        select f.*, k.label as kri_label, k.unit as kri_unit,
               s.status as flag_status, s.age_weeks as flag_age_weeks, s.first_flagged_week,
               r.risk_score, r.kris_with_data
        from site_flags as f
        left join kri_catalog as k on k.kri_id = f.kri_id and k.level = 'site'
        left join flag_status as s
            on s.as_of_date = f.as_of_date and s.comparison_group = f.comparison_group
            and s.smo_id = f.smo_id and s.study_id = f.study_id and s.site_id = f.site_id
            and s.kri_id = f.kri_id
        left join site_risk_scores as r
            on r.as_of_date = f.as_of_date and r.smo_id = f.smo_id and r.study_id = f.study_id
            and r.site_id = f.site_id
        where f.as_of_date = (select max(as_of_date) from site_flags)
            and f.comparison_group = 'study' and f.flag = 'red'
        order by r.risk_score desc nulls last, f.smo_id, f.study_id, f.site_id, f.kri_id
        """,
    )
    actions = oversight_actions(con)
    for r in rows:
        r["open_action"] = open_action(actions, r)
    return rows


def red_sites(con: Connection) -> RedSites:
    sites = _rows(
        con,
        "select * "
        + _latest("site_risk_scores", "red_flags > 0")
        + " order by risk_score desc, site_id limit 15",
    )
    return RedSites(sites, red_flags(con), kri_labels(con))


# -- oversight actions (the hook) ---------------------------------------------------------------

#: The published actions mart (spec 2.5), built by the actions feed; absent from older publishes.
ACTIONS_TABLE = "oversight_actions"
#: Action statuses that leave a flag's action open.
OPEN_STATUSES = ("OPEN", "IN_PROGRESS")


def oversight_actions(con: Connection) -> list[dict]:
    """The one place the report reads the sponsor's actions: every row of the published
    `oversight_actions` (spec 2.5 columns: action_id, study_id, site_id, kri_id, status,
    opened_date, due_date, owner, action_text, ...), [] when the publish has no such table."""
    if not _published(con, ACTIONS_TABLE):
        return []
    return _rows(con, f"select * from {ACTIONS_TABLE}")


def site_actions(actions: list[dict], site: dict) -> list[dict]:
    """The actions on one site (its flags), newest first: a flagged site block's list."""
    mine = [
        a
        for a in actions
        if (a.get("study_id"), a.get("site_id")) == (site["study_id"], site["site_id"])
    ]
    return sorted(mine, key=lambda a: str(a.get("opened_date") or ""), reverse=True)


def open_action(actions: list[dict], flag: dict) -> dict | None:
    """The newest open action on a red flag (site and KRI), None when there is none."""
    return next(
        (
            a
            for a in site_actions(actions, flag)
            if a.get("kri_id") == flag["kri_id"] and a.get("status") in OPEN_STATUSES
        ),
        None,
    )


# -- flagged sites ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlaggedSite:
    """One site with a red flag this week: its risk-score row, its red flags (see `red_flags`),
    the weekly values of each red KRI's KPI (kpi_weekly_history: per KRI, the 'site' rows and
    its study's 'study' rows), its flag
    episodes (flag_episodes, within the study, every KRI) and the actions on it."""

    site: dict
    flags: list[dict]
    trends: dict[str, dict[str, list[dict]]]
    episodes: list[dict]
    actions: list[dict]


def _kri_trend(
    con: Connection, kri_id: str, study: str, smo: str | None = None, site: str | None = None
) -> list[dict]:
    """A site KRI's KPI per as-of week (kpi_weekly_history): at the site, or for its study."""
    where = "h.level = 'site' and h.smo_id = ? and h.site_id = ?" if site else "h.level = 'study'"
    return _rows(
        con,
        "select h.as_of_date, h.value from kpi_weekly_history as h "
        "join kri_catalog as k on k.kpi_id = h.kpi_id and k.level = 'site' "
        f"where k.kri_id = ? and h.study_id = ? and {where} order by h.as_of_date",
        [kri_id, study, *((smo, site) if site else ())],
    )


def _site_trends(
    con: Connection, keys: list[tuple[str, str, str, str]]
) -> dict[tuple[str, str, str, str], list[dict]]:
    """`_kri_trend` at the site for every (kri_id, study, smo, site) of `keys`, in one read."""
    trends: dict[tuple[str, str, str, str], list[dict]] = {key: [] for key in keys}
    if not keys:
        return trends
    rows = con.execute(
        """
        select k.kri_id, h.study_id, h.smo_id, h.site_id, h.as_of_date, h.value
        from kpi_weekly_history as h
        join kri_catalog as k on k.kpi_id = h.kpi_id and k.level = 'site'
        join (
            select unnest(?::varchar[]) as kri_id, unnest(?::varchar[]) as study_id,
                   unnest(?::varchar[]) as smo_id, unnest(?::varchar[]) as site_id
        ) as w
            on w.kri_id = k.kri_id and w.study_id = h.study_id and w.smo_id = h.smo_id
            and w.site_id = h.site_id
        where h.level = 'site'
        order by k.kri_id, h.study_id, h.smo_id, h.site_id, h.as_of_date
        """,
        [list(column) for column in zip(*keys, strict=True)],
    ).fetchall()
    for kri_id, study, smo, site, as_of_date, value in rows:
        trends[kri_id, study, smo, site].append({"as_of_date": as_of_date, "value": value})
    return trends


def _site_episodes(
    con: Connection, sites: list[tuple[str, str, str]]
) -> dict[tuple[str, str, str], list[dict]]:
    """Each flagged site's flag episodes (latest week, within the study), in one read."""
    episodes: dict[tuple[str, str, str], list[dict]] = {site: [] for site in sites}
    if not sites:
        return episodes
    rows = _rows(
        con,
        "select e.*, k.label as kri_label "
        "from flag_episodes as e left join kri_catalog as k "
        "on k.kri_id = e.kri_id and k.level = 'site' "
        "where e.as_of_date = (select max(as_of_date) from flag_episodes) "
        "and e.comparison_group = 'study' "
        "and (e.smo_id, e.study_id, e.site_id) in (select (unnest(?::varchar[]), "
        "unnest(?::varchar[]), unnest(?::varchar[]))) "
        "order by e.smo_id, e.study_id, e.site_id, e.first_flagged_week desc, e.kri_id",
        [list(column) for column in zip(*sites, strict=True)],
    )
    for row in rows:
        episodes[row["smo_id"], row["study_id"], row["site_id"]].append(row)
    return episodes


def flagged_sites(con: Connection) -> list[FlaggedSite]:
    """Every site with a red within-study flag this week, riskiest first. Trends and episodes
    are read for all flagged sites at once, not site by site."""
    flags = red_flags(con)
    actions = oversight_actions(con)
    blocks = []
    # a study's trend of a KRI is the same in every block of that study: read once
    study_trends: dict[tuple[str, str], list[dict]] = {}
    for kri_id, study in dict.fromkeys((r["kri_id"], r["study_id"]) for r in flags):
        study_trends[kri_id, study] = _kri_trend(con, kri_id, study)
    site_keys = list(dict.fromkeys((r["smo_id"], r["study_id"], r["site_id"]) for r in flags))
    site_trends = _site_trends(
        con,
        list(dict.fromkeys((r["kri_id"], r["study_id"], r["smo_id"], r["site_id"]) for r in flags)),
    )
    episodes = _site_episodes(con, site_keys)
    for site_key in site_keys:
        mine = [r for r in flags if (r["smo_id"], r["study_id"], r["site_id"]) == site_key]
        smo, study, site_id = site_key
        trends = {
            r["kri_id"]: {
                "site": site_trends[r["kri_id"], study, smo, site_id],
                "study": study_trends[r["kri_id"], study],
            }
            for r in mine
        }
        site = {"smo_id": site_key[0], "study_id": site_key[1], "site_id": site_key[2],
                "risk_score": mine[0]["risk_score"]}  # fmt: skip
        blocks.append(
            FlaggedSite(site, mine, trends, episodes[site_key], site_actions(actions, site))
        )
    return blocks


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
    """What a lead should act on this week: red flags whose episode starts this week (flag_status
    new), signals nobody acted on in time (unattended_signals), QTL exceedances with no
    recorded evaluation (study_qtls status `exceeded_evaluation_due`) and overdue actions
    (oversight_actions)."""

    new_red_flags: list[dict]
    qtls_due: list[dict]
    #: red flags this week whose episode started earlier (listed under red sites)
    persisting_red_flags: int = 0
    #: open red flags and QTL exceedances with no action opened by their due date
    unattended: list[dict] = field(default_factory=list)
    #: open actions past their due date
    overdue_actions: list[dict] = field(default_factory=list)
    #: studies and SMOs below their diversity plan's minimum share this week (`below_minimum`)
    below_minimum: list[dict] = field(default_factory=list)


def _published(con: Connection, table: str) -> bool:
    (present,) = con.execute(
        "select count(*) from duckdb_tables() where table_name = ?", [table]
    ).fetchall()[0]
    return bool(present)


def unattended(con: Connection) -> list[dict]:
    """Open signals of the latest week in state `unattended` (unattended_signals), with the
    KRI's readable name or the QTL's description, oldest first; [] before the mart exists."""
    if not _published(con, "unattended_signals"):
        return []
    return _rows(
        con,
        f"""
        select u.*, k.label as kri_label, q.description as qtl_description
        from (
            select * {_latest("unattended_signals", "state = 'unattended' and is_open")}
        ) as u
        left join (select distinct kri_id, label from kri_catalog) as k using (kri_id)
        left join (
            select distinct study_id, qtl_id, description from study_qtls
        ) as q using (study_id, qtl_id)
        order by u.started_week, u.study_id, u.site_id nulls first, u.kri_id, u.qtl_id
        """,
    )


def needs_attention(con: Connection) -> Attention:
    flags = red_flags(con)
    return Attention(
        new_red_flags=[r for r in flags if r["flag_status"] == "new"],
        qtls_due=[r for r in qtls(con) if r["qtl_status"] == "exceeded_evaluation_due"],
        persisting_red_flags=sum(1 for r in flags if r["flag_status"] != "new"),
        unattended=unattended(con),
        overdue_actions=sorted(
            (a for a in oversight_actions(con) if a.get("is_overdue")),
            key=lambda a: (-(a.get("days_overdue") or 0), a["action_id"]),
        ),
        below_minimum=below_minimum(con),
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


# -- representativeness of enrollment ----------------------------------------------------------

#: The published representativeness mart (issue 21); absent from older publishes.
REPRESENTATIVENESS_TABLE = "enrollment_representativeness"
#: The study- and SMO-level KRI: a group's share below its plan minimum (>= 20 randomized).
BELOW_MINIMUM_KRI = "group_share_below_minimum"
#: The plan's dimensions, in the order the report shows them.
DIMENSIONS = ("sex", "age_group", "race", "ethnicity")
#: The remainder group: randomized subjects whose value is in no plan group.
NOT_IN_PLAN = "NOT IN PLAN"
#: How many SMOs and sites furthest below plan each study block lists.
BELOW_PLAN_SHOWN = 5

#: Rows in the order the report shows them: by study, level, SMO, site, dimension (DIMENSIONS),
#: group, the remainder group last.
_REPRESENTATIVENESS_ORDER = (
    "order by study_id, case level when 'study' then 0 when 'smo' then 1 else 2 end, "
    "smo_id nulls first, site_id nulls first, "
    + "case dimension "
    + " ".join(f"when '{d}' then {i}" for i, d in enumerate(DIMENSIONS))
    + " else 9 end, dimension, group_code = 'NOT IN PLAN', group_code, as_of_date"
)


@dataclass(frozen=True)
class StudyRepresentativeness:
    """One study's block: its plan, the study-level rows of the latest week (one per dimension
    and group), the SMOs and sites furthest below plan, and the study-level share of each group
    with a minimum week by week. A study without a plan has only `no_plan_reason`."""

    study_id: str
    plan_id: str | None
    plan_version: str | None
    groups: list[dict]
    below_plan: list[dict]
    trend: list[dict]
    no_plan_reason: str | None = None


@dataclass(frozen=True)
class Representativeness:
    """The representativeness section: one block per study (latest as-of week) and every row of
    that week (`rows`, with the mart's `columns`) for the CSV export. `published` is False for
    a publish without the mart."""

    published: bool
    studies: list[StudyRepresentativeness] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def _below_plan_key(r: dict) -> tuple:
    """Furthest below plan first: red, then amber flags, then the most negative gap; a gap
    unknown (suppressed) after the known ones."""
    rank = {"red": 0, "amber": 1}.get(r["flag"], 2)
    gap = r["gap_pp"]
    return (rank, gap is None, gap if gap is not None else 0.0, r["level"] != "smo",
            r["smo_id"] or "", r["site_id"] or "", r["dimension"], r["group_code"])  # fmt: skip


def below_plan(rows: list[dict], limit: int = BELOW_PLAN_SHOWN) -> list[dict]:
    """The SMO and site rows furthest below plan: groups with a minimum share that are flagged
    red or amber or lie below their target, red/amber first then by gap (percentage points)
    ascending; at most `limit`."""
    candidates = [
        r
        for r in rows
        if r["level"] in ("smo", "site")
        and r["minimum_share"] is not None
        and (r["flag"] in ("red", "amber") or (r["gap_pp"] is not None and r["gap_pp"] < 0))
    ]
    return sorted(candidates, key=_below_plan_key)[:limit]


def representativeness(con: Connection) -> Representativeness:
    """Per study with rows in the latest week of `enrollment_representativeness`: the study-level
    shares per dimension and group against the plan, the SMOs and sites furthest below plan
    (`below_plan`) and the weekly study-level share of each group with a minimum."""
    if not _published(con, REPRESENTATIVENESS_TABLE):
        return Representativeness(published=False)
    cursor = con.execute(
        f"select * {_latest(REPRESENTATIVENESS_TABLE)} {_REPRESENTATIVENESS_ORDER}"
    )
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    trend = _rows(
        con,
        f"select * from {REPRESENTATIVENESS_TABLE} where level = 'study' "
        f"and minimum_share is not null {_REPRESENTATIVENESS_ORDER}",
    )
    studies = []
    for study in dict.fromkeys(r["study_id"] for r in rows):
        mine = [r for r in rows if r["study_id"] == study]
        groups = [r for r in mine if r["level"] == "study"]
        planned = [r for r in groups if r["plan_id"] is not None]
        if not planned:
            reasons = [r["no_data_reason"] for r in mine if r["no_data_reason"]]
            reason = reasons[0] if reasons else "no diversity plan for this study"
            studies.append(StudyRepresentativeness(study, None, None, [], [], [], reason))
            continue
        studies.append(
            StudyRepresentativeness(
                study,
                planned[0]["plan_id"],
                planned[0]["plan_version"],
                groups,
                below_plan(mine),
                [r for r in trend if r["study_id"] == study],
            )
        )
    return Representativeness(True, studies, columns, rows)


def below_minimum(con: Connection) -> list[dict]:
    """Every study and SMO whose share of a group is below the plan's minimum this week (a red
    `group_share_below_minimum` flag), by study; [] when the publish has no such mart."""
    if not _published(con, REPRESENTATIVENESS_TABLE):
        return []
    return _rows(
        con,
        f"select * {_latest(REPRESENTATIVENESS_TABLE)} and level in ('study', 'smo') "
        f"and kri_id = ? and flag = 'red' {_REPRESENTATIVENESS_ORDER}",
        [BELOW_MINIMUM_KRI],
    )


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
    label: KpiLabel | None = None


def funnels(con: Connection) -> list[Funnel]:
    """One funnel per KRI with portfolio funnel flags this week, by KRI id."""
    rows = _rows(
        con,
        "select * "
        + _latest("site_flags", "comparison_group = 'portfolio' and method = 'funnel'")
        + " order by kri_id, site_id",
    )
    result, labels = [], kri_labels(con)
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
        result.append(Funnel(kri, plotted, centre, phi, limits, labels.get(kri)))
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
    label: KpiLabel | None = None


def deviation_trends(con: Connection) -> list[Trend]:
    labels = kpi_labels(con, "smo")
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
            labels.get(kpi),
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
