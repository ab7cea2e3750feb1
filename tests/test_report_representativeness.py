"""The report's representativeness section (issue 21), read from a published file holding
`enrollment_representativeness` as the mart's column list defines it: bar charts with target and
minimum marks where the shares put them, no bar for a suppressed or no-data group, the studies
and SMOs below their minimum in needs attention (and nothing else), the SMOs and sites furthest
below plan in order, and the latest week's rows as CSV.

The mart is written here from counts per unit (share, gap and the study/SMO flag computed from
them by the test), into a temporary DuckDB file; the last test adds it to a copy of a real
refreshed portfolio's published file and renders the whole report.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publishing import report_data, report_html
from publishing.charts import MARGIN, WIDTH, ShareBar, share_bars

#: The mart's columns and types (the shared design of issue 21).
COLUMNS = {
    "as_of_date": "date", "level": "varchar", "study_id": "varchar", "smo_id": "varchar",
    "site_id": "varchar", "country": "varchar", "dimension": "varchar", "group_code": "varchar",
    "plan_id": "varchar", "plan_version": "varchar", "target_share": "double",
    "minimum_share": "double", "randomized_with_dimension": "bigint",
    "randomized_in_group": "bigint", "share": "double", "gap_pp": "double",
    "suppressed": "boolean", "suppression_reason": "varchar", "kri_id": "varchar",
    "kri_version": "varchar", "z_score": "double", "flag": "varchar",
    "no_data_reason": "varchar", "smos_without_data": "varchar",
}  # fmt: skip
#: SYN-001's plan (seeds/diversity_plans.csv): (target, minimum) per dimension and group.
PLAN = {
    ("sex", "F"): (0.45, 0.30), ("sex", "M"): (0.55, None), ("sex", "NOT IN PLAN"): (None, None),
    ("age_group", "18-64"): (0.60, None), ("age_group", "65-74"): (0.25, 0.12),
    ("age_group", "75+"): (0.15, 0.05), ("age_group", "NOT IN PLAN"): (None, None),
}  # fmt: skip
WEEK1, WEEK2 = dt.date(2026, 11, 23), dt.date(2026, 11, 30)
PLOT = WIDTH - MARGIN["left"] - MARGIN["right"]


def cell(level, dimension, group, n_in, n_dim, *, study="SYN-001", smo=None, site=None,
         week=WEEK2, suppressed="", flag=None, z=None, no_data=None, missing=None) -> dict:  # fmt: skip
    """One mart row from its counts: share and gap from them unless suppressed; a study or SMO
    flag from the rule (red below the minimum with >= 20 randomized), a site's as given."""
    target, minimum = PLAN.get((dimension, group), (None, None)) if study == "SYN-001" else (None,
                                                                                            None)  # fmt: skip
    if n_in is not None and 1 <= n_in <= 4 and not suppressed:
        suppressed = "cell under 5"
    share = None if suppressed or not n_dim else n_in / n_dim
    if level != "site" and flag is None:
        if no_data:
            flag = "no_data"
        elif minimum is None or n_dim < 20:
            flag = "not_evaluated"
        else:
            flag = "red" if n_in / n_dim < minimum else "green"
    plan = study == "SYN-001"
    return {
        "as_of_date": week, "level": level, "study_id": study, "smo_id": smo, "site_id": site,
        "country": "DE" if site else None, "dimension": dimension, "group_code": group,
        "plan_id": "DAP-SYN-001" if plan else None, "plan_version": "2026.1" if plan else None,
        "target_share": target, "minimum_share": minimum, "randomized_with_dimension": n_dim,
        "randomized_in_group": None if suppressed else n_in, "share": share,
        "gap_pp": None if share is None or target is None else (share - target) * 100,
        "suppressed": bool(suppressed), "suppression_reason": suppressed or None,
        "kri_id": "group_share_site_funnel" if level == "site" else "group_share_below_minimum",
        "kri_version": "2026.1", "z_score": None if suppressed else z, "flag": flag,
        "no_data_reason": no_data, "smos_without_data": missing,
    }  # fmt: skip


def sex(level, f, m, other, **kw) -> list[dict]:
    n = f + m + other
    return [cell(level, "sex", g, c, n, **kw) for g, c in (("F", f), ("M", m), ("NOT IN PLAN",
                                                                                other))]  # fmt: skip


def portfolio_rows() -> list[dict]:
    """SYN-001: the study green on women (34 of 100), SMO-A red (8 of 50), SMO-B green, SMO-C
    without a sex column; site A1 red with 3 women (suppressed, and its complement), A2 amber;
    no SMO delivered ages; week 1 had the study below its minimum. SYN-017 has no plan."""
    complement = "complement of a suppressed cell"
    rows = sex("study", 34, 60, 6, missing="SMO-C")
    rows += sex("smo", 8, 42, 0, smo="SMO-A") + sex("smo", 26, 18, 6, smo="SMO-B")
    rows += [cell("smo", "sex", g, None, 0, smo="SMO-C", no_data="no sex column delivered")
             for g in ("F", "M", "NOT IN PLAN")]  # fmt: skip
    rows += [cell("site", "sex", "F", 3, 25, smo="SMO-A", site="A1", flag="red"),
             cell("site", "sex", "M", 22, 25, smo="SMO-A", site="A1", flag="not_evaluated",
                  suppressed=complement),
             cell("site", "sex", "NOT IN PLAN", 0, 25, smo="SMO-A", site="A1",
                  flag="not_evaluated")]  # fmt: skip
    rows += sex("site", 5, 20, 0, smo="SMO-A", site="A2", flag="amber", z=-2.2)
    rows += sex("site", 13, 7, 5, smo="SMO-B", site="B1", flag="green", z=0.9)
    # (marked suppressed too, as a unit without subjects may be: no data is what it shows)
    rows += [cell("study", "age_group", g, None, 0, no_data="no age or age_group column delivered",
                  suppressed="unit under 5",
                  missing="SMO-A, SMO-B, SMO-C") for g in ("18-64", "65-74", "75+", "NOT IN PLAN")]  # fmt: skip
    rows += sex("study", 20, 45, 5, week=WEEK1, missing="SMO-C")
    rows += [dict(cell("study", "race", "NOT IN PLAN", None, None, no_data="no race groups in "
                       "the diversity plan"), plan_id=None, plan_version=None)]  # fmt: skip
    rows += [cell("study", "sex", "NOT IN PLAN", None, None, study="SYN-017",
                  no_data="no diversity plan for this study", flag="no_data")]  # fmt: skip
    return rows


def write_mart(path: Path, rows: list[dict]) -> None:
    """`enrollment_representativeness` with `rows` in a DuckDB file (created if absent)."""
    with duckdb.connect(str(path)) as con:
        con.execute(
            "create or replace table enrollment_representativeness ("
            + ", ".join(f"{c} {t}" for c, t in COLUMNS.items()) + ")"
        )  # fmt: skip
        if rows:
            con.executemany(
                f"insert into enrollment_representativeness values "
                f"({', '.join('?' for _ in COLUMNS)})",
                [[r[c] for c in COLUMNS] for r in rows],
            )


@pytest.fixture
def published(tmp_path: Path) -> Path:
    path = tmp_path / "oversight.duckdb"
    write_mart(path, portfolio_rows())
    return path


def _read(path: Path, function):
    with duckdb.connect(str(path), read_only=True) as con:
        return function(con)


class _Svg(HTMLParser):
    """Every element's attributes, by tag (marks of a chart, rows of a page)."""

    def __init__(self):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def find(self, tag: str, css: str | None = None) -> list[dict]:
        return [a for t, a in self.elements if t == tag and (css is None or css in a.get(
            "class", "").split())]  # fmt: skip


def _svg(html: str) -> _Svg:
    parser = _Svg()
    parser.feed(html)
    return parser


# -- the chart ----------------------------------------------------------------------------------

shares = st.floats(0, 1, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(share=shares, target=shares, minimum=shares, other=shares)
def test_a_bar_ends_at_its_share_and_the_marks_sit_at_target_and_minimum(
    share, target, minimum, other
):
    """On a 0-100% axis from the left margin, a bar's width, the target and the minimum marks
    are the values times the plot's width."""
    svg = _svg(share_bars("c", "t", "share (%)", "group (term)", [
        ShareBar("F", share, target, minimum), ShareBar("M", other, 1 - target, None),
    ]))  # fmt: skip
    bars = {a["data-group"]: a for a in svg.find("rect", "bar")}
    assert set(bars) == {"F", "M"}
    for group, value in (("F", share), ("M", other)):
        assert float(bars[group]["x"]) == MARGIN["left"]
        assert float(bars[group]["width"]) == pytest.approx(value * PLOT, abs=0.06)
    marks = {(a["class"].split()[0], a["data-group"]): a for a in svg.find("line", "mark")}
    assert set(marks) == {("target", "F"), ("minimum", "F"), ("target", "M")}
    for key, value in ((("target", "F"), target), (("minimum", "F"), minimum),
                       (("target", "M"), 1 - target)):  # fmt: skip
        assert float(marks[key]["x1"]) == pytest.approx(MARGIN["left"] + value * PLOT, abs=0.06)
    # each group's marks sit on its own row, the first group above the second
    assert float(marks[("target", "F")]["y1"]) < float(marks[("target", "M")]["y1"])


def test_suppressed_and_no_data_groups_draw_no_bar_only_their_label():
    svg_text = share_bars("c", "SYN-001: sex", "share (%)", "group (term)", [
        ShareBar("F", None, 0.45, 0.30, status="suppressed"),
        ShareBar("M", 0.0, 0.55, None),  # a real zero: published, drawn as a bar of width 0
        ShareBar("NOT IN PLAN", None, status="no_data", reason="no sex column delivered"),
    ])  # fmt: skip
    svg = _svg(svg_text)
    assert [a["data-group"] for a in svg.find("rect", "bar")] == ["M"]
    assert float(svg.find("rect", "bar")[0]["width"]) == 0
    labels = {a["data-group"]: a for a in svg.find("text", "row-label")}
    assert "muted" in labels["F"]["class"] and "muted" in labels["NOT IN PLAN"]["class"]
    assert "F: suppressed (&lt;5) (target 45%, minimum 30%)" in svg_text
    assert "NOT IN PLAN: no data: no sex column delivered" in svg_text
    # the plan's marks stay: the reader sees what was planned even when the share is unknown
    assert {a["data-group"] for a in svg.find("line", "minimum")} == {"F"}
    # title and text alternative
    assert '<title id="c-title">SYN-001: sex</title>' in svg_text
    assert re.search(r'<desc id="c-desc">[^<]*F: suppressed', svg_text)


# -- needs attention ----------------------------------------------------------------------------


def test_a_red_smo_is_in_needs_attention_and_green_ones_are_not(published: Path):
    rows = _read(published, report_data.below_minimum)
    items = report_html.attention_items(
        report_data.Attention(new_red_flags=[], qtls_due=[], below_minimum=rows)
    )
    lines = [text for kind, text in items if kind == "representativeness"]
    assert lines == [
        "Below diversity plan minimum: SYN-001, SMO-A: sex F 16.0% vs minimum 30% (target 45%) of "
        "50 randomized with sex delivered; plan DAP-SYN-001 v2026.1, KRI "
        "group_share_below_minimum v2026.1"
    ]
    # green: the study (34%) and SMO-B (52%); a red site (A1) is a funnel flag, not listed here
    assert not any("SMO-B" in line or "whole study" in line or "A1" in line for line in lines)


def test_a_suppressed_red_smo_reads_suppressed_and_the_study_reads_whole_study(tmp_path: Path):
    path = tmp_path / "oversight.duckdb"
    rows = sex("study", 18, 62, 0) + sex("smo", 4, 40, 0, smo="SMO-A")
    write_mart(path, rows)
    lines = [
        text
        for kind, text in report_html.attention_items(
            report_data.Attention([], [], below_minimum=_read(path, report_data.below_minimum))
        )
        if kind == "representativeness"
    ]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Below diversity plan minimum: SYN-001 (whole study): sex F 22.5%")
    assert "SYN-001, SMO-A: sex F suppressed (<5) vs minimum 30%" in lines[1]
    assert "of 44 randomized" in lines[1]


def test_a_publish_without_the_mart_says_so_in_one_line(tmp_path: Path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("create table meta (publish_id varchar)")
    data = _read(path, report_data.representativeness)
    assert data.published is False and _read(path, report_data.below_minimum) == []
    body = report_html.representativeness(data)
    assert body.html.count("<p") == 1 and "no representativeness mart" in body.html
    assert body.charts == () and body.csvs == ()


# -- furthest below plan ------------------------------------------------------------------------

flags = st.sampled_from(["red", "amber", "green", "not_evaluated", "no_data"])
gaps = st.one_of(st.none(), st.floats(-60, 60, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["smo", "site", "study"]), flags, gaps, st.booleans()),
                max_size=14))  # fmt: skip
def test_furthest_below_plan_is_red_then_amber_then_by_gap_at_most_five(units):
    rows = [
        {"level": level, "flag": flag, "gap_pp": gap, "minimum_share": 0.3 if has_min else None,
         "smo_id": f"SMO-{i}", "site_id": f"S{i}" if level == "site" else None,
         "dimension": "sex", "group_code": "F"}
        for i, (level, flag, gap, has_min) in enumerate(units)
    ]  # fmt: skip
    shown = report_data.below_plan(rows)
    eligible = [
        r for r in rows
        if r["level"] != "study" and r["minimum_share"] is not None
        and (r["flag"] in ("red", "amber") or (r["gap_pp"] is not None and r["gap_pp"] < 0))
    ]  # fmt: skip
    assert len(shown) == min(5, len(eligible))
    assert all(r in eligible for r in shown)
    rank = {"red": 0, "amber": 1}
    for a, b in zip(shown, shown[1:], strict=False):
        ra, rb = rank.get(a["flag"], 2), rank.get(b["flag"], 2)
        assert ra <= rb
        if ra == rb and b["gap_pp"] is not None:
            assert a["gap_pp"] is not None and a["gap_pp"] <= b["gap_pp"]
    # nothing left out is further below plan than the last shown
    if shown:
        last = (rank.get(shown[-1]["flag"], 2), shown[-1]["gap_pp"])
        for r in eligible:
            if r not in shown and rank.get(r["flag"], 2) == last[0] and last[1] is not None:
                assert r["gap_pp"] is None or r["gap_pp"] >= last[1]


def test_the_study_block_lists_red_then_amber_units_with_suppressed_values(published: Path):
    data = _read(published, report_data.representativeness)
    [syn1] = [s for s in data.studies if s.study_id == "SYN-001"]
    assert [(r["level"], r["smo_id"], r["site_id"]) for r in syn1.below_plan] == [
        ("smo", "SMO-A", None), ("site", "SMO-A", "A1"), ("site", "SMO-A", "A2")
    ]  # fmt: skip
    html = report_html.representativeness(data).html
    table = re.search(r'<table class="below-plan">.*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert [c[5] for c in cells] == ["16.0%", "suppressed (&lt;5)", "20.0%"]
    assert [c[8] for c in cells] == ["-29.0", "–", "-25.0"]


# -- the section --------------------------------------------------------------------------------


def test_each_study_with_a_plan_has_its_charts_and_one_without_a_plan_one_line(published: Path):
    data = _read(published, report_data.representativeness)
    body = report_html.representativeness(data)
    assert body.charts == (
        "representativeness-SYN-001-sex",
        "representativeness-SYN-001-age_group",
        "representativeness-SYN-001-trend",
    )
    assert re.search(r'data-study="SYN-017">SYN-017: no diversity plan \(no diversity plan '
                     r"for this study\)</p>", body.html)  # fmt: skip
    svg = _svg(body.html)
    # sex: every plan group has a bar (the study's cells are all >= 5); ages: no SMO sent them
    sex_chart = body.html.split('data-chart="representativeness-SYN-001-sex"')[1].split(
        "</figure>")[0]  # fmt: skip
    assert {a["data-group"] for a in _svg(sex_chart).find("rect", "bar")} == {
        "F", "M", "NOT IN PLAN"
    }  # fmt: skip
    age_chart = body.html.split('data-chart="representativeness-SYN-001-age_group"')[1].split(
        "</figure>")[0]  # fmt: skip
    assert _svg(age_chart).find("rect", "bar") == []
    assert "no data: no age or age_group column delivered" in age_chart
    assert "No sex column from: SMO-C." in sex_chart
    # a dimension without plan groups: a note, no chart
    assert "Not in the plan: race: no race groups in the diversity plan." in body.html
    # the trend: the study's share of women each week, as the mart has it (independent query)
    expected = _read(published, lambda con: con.execute(
        "select as_of_date, 100.0 * randomized_in_group / randomized_with_dimension "
        "from enrollment_representativeness where level = 'study' and study_id = 'SYN-001' "
        "and dimension = 'sex' and group_code = 'F' order by 1").fetchall())  # fmt: skip
    points = [(a["data-x"], float(a["data-y"])) for a in svg.find("circle", "point")
              if a.get("data-series") == "sex F"]  # fmt: skip
    assert [x for x, _ in points] == [str(d) for d, _ in expected] and len(points) == 2
    assert [y for _, y in points] == pytest.approx([y for _, y in expected])


def test_the_csv_export_holds_every_row_of_the_latest_week(published: Path):
    body = report_html.representativeness(_read(published, report_data.representativeness))
    [export] = body.csvs
    assert export.name == "representativeness" and export.header == list(COLUMNS)
    expected = _read(published, lambda con: con.execute(
        "select level, coalesce(smo_id, ''), coalesce(site_id, ''), dimension, group_code, "
        "coalesce(randomized_in_group::varchar, ''), suppressed::varchar "
        "from enrollment_representativeness "
        "where as_of_date = (select max(as_of_date) from enrollment_representativeness)"
    ).fetchall())  # fmt: skip
    rows = list(csv.reader(export.text().splitlines()))[1:]
    at = {c: i for i, c in enumerate(COLUMNS)}
    keys = ("level", "smo_id", "site_id", "dimension", "group_code", "randomized_in_group",
            "suppressed")  # fmt: skip
    assert sorted(tuple(r[at[k]] for k in keys) for r in rows) == sorted(expected)
    assert {r[at["as_of_date"]] for r in rows} == {str(WEEK2)}
    # the site with 3 women: both cells empty, marked suppressed
    a1 = {r[at["group_code"]]: r for r in rows if r[at["site_id"]] == "A1"}
    assert a1["F"][at["randomized_in_group"]] == "" and a1["F"][at["suppressed"]] == "true"
    assert a1["M"][at["suppression_reason"]] == "complement of a suppressed cell"


# -- the whole report ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_mart(refreshed_portfolio: Path, tmp_path_factory: pytest.TempPathFactory):
    """A copy of a real publish plus the mart (its first study, SMO and site in the roles of
    SYN-001, SMO-A and A1), the report written: (publish dir, report result, rows, ids)."""
    from publishing.bi_database import published_path
    from publishing.report import write_report

    work = tmp_path_factory.mktemp("with-mart") / "publish"
    shutil.copytree(refreshed_portfolio / "publish", work, symlinks=True)
    path = published_path(work)
    with duckdb.connect(str(path)) as con:
        week, study, smo, site = con.execute(
            "select as_of_date, study_id, smo_id, site_id from site_enrollment "
            "where as_of_date = (select max(as_of_date) from site_enrollment) order by all limit 1"
        ).fetchall()[0]
    rows = [
        dict(r, study_id=study if r["study_id"] == "SYN-001" else r["study_id"],
             smo_id=smo if r["smo_id"] == "SMO-A" else r["smo_id"],
             site_id=site if r["site_id"] == "A1" else r["site_id"],
             as_of_date=week if r["as_of_date"] == WEEK2 else week - dt.timedelta(days=7))
        for r in portfolio_rows()
    ]  # fmt: skip
    write_mart(path, rows)
    return work, write_report(work, keep=2), rows, (week, study, smo)


@pytest.mark.integration
def test_the_report_shows_the_section_attention_and_csv_from_the_published_file(with_mart):
    """A real publish plus the mart (its first study and one of its SMOs made red): the page has
    the section with its charts, needs attention names the SMO, the CSV folder holds the rows."""
    from publishing.report import REPORT_NAME

    work, result, rows, (week, study, smo) = with_mart
    html = (work / REPORT_NAME).read_text(encoding="utf-8")
    section = html.split('<section id="representativeness">')[1].split("</section>")[0]
    chart_ids = [c for c in result.charts if c.startswith("representativeness-")]
    assert chart_ids == [re.sub(r"[^A-Za-z0-9_-]", "-", f"representativeness-{study}-{d}")
                         for d in ("sex", "age_group", "trend")]  # fmt: skip
    assert all(f'data-chart="{c}"' in section for c in chart_ids)
    attention = re.findall(r'<li data-attention="representativeness">(.*?)</li>', html)
    assert len(attention) == 1 and f"{study}, {smo}: sex F 16.0% vs minimum 30%" in attention[0]
    exported = [p for p in result.csvs if p.name == "representativeness.csv"]
    assert exported, [p.name for p in result.csvs]
    with open(exported[0], newline="", encoding="utf-8") as handle:
        shown = list(csv.reader(handle))
    assert shown[0] == list(COLUMNS)
    assert len(shown) - 1 == sum(1 for r in rows if r["as_of_date"] == week)
    assert 'data-csv-link="representativeness"' in section


@pytest.mark.integration
def test_the_sections_charts_render_in_chromium_like_every_other_chart(with_mart, tmp_path):
    """The browser test's rules (tests/test_report.py) hold for the new charts: laid out at a
    usable size, a title, two axis labels with units, marks; no console error, nothing fetched."""
    from publishing.report import REPORT_NAME
    from tests.test_report import CHROMIUM, render_in_browser

    if CHROMIUM is None:
        pytest.skip("chromium not found (see tests/test_report.py)")
    work, result, *_ = with_mart
    measured, console = render_in_browser(work / REPORT_NAME, tmp_path)
    assert console == [] and measured["errors"] == [] and measured["resources"] == []
    assert measured["width"] <= 1366, "the page scrolls sideways on a laptop screen"
    charts = {c["id"]: c for c in measured["charts"] if c["id"].startswith("representativeness-")}
    assert set(charts) == {c for c in result.charts if c.startswith("representativeness-")}
    for chart in charts.values():
        assert chart["width"] >= 400 and chart["height"] >= 200, chart
        assert chart["title"] and len(chart["axes"]) == 2, chart
        assert all("(" in axis or axis == "as-of week" for axis in chart["axes"]), chart
        assert chart["marks"] > 0, chart
