"""The oversight report: its numbers are the published marts', it is self-contained, and it
renders in a real browser (Debian's Chromium, headless) with every chart present.

The browser tests need `chromium` on PATH: `make test` installs Debian's package where it runs
as root with apt-get (CI); elsewhere they skip and say so.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from core.settings import PROJECT_ROOT
from publishing.bi_database import published_path
from publishing.report import REPORT_NAME, REPORTS_DIR

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not found: Debian's `chromium` package, which `make test` installs when it "
    "runs as root with apt-get (as in CI)",
)
#: Where the browser test leaves its screenshot (git-ignored).
ARTIFACTS = Path(os.environ.get("SMO_TEST_ARTIFACTS", PROJECT_ROOT / "var" / "test-artifacts"))

#: Injected into a copy of the report: after load, measure every chart as laid out, list every
#: resource the page fetched and every error event, and write it all into the DOM as JSON.
MEASURE = """
<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(
  e.message || (e.target && (e.target.src || e.target.href)) || 'error')), true);
window.addEventListener('load', () => {
  const charts = [...document.querySelectorAll('figure[data-chart]')].map(f => {
    const svg = f.querySelector('svg');
    const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id: f.dataset.chart, width: box.width, height: box.height,
      title: (f.querySelector('.chart-title') || {}).textContent || '',
      axes: [...f.querySelectorAll('.axis-label')].map(t => t.textContent),
      marks: f.querySelectorAll('.mark').length};
  });
  const out = {charts, errors: window.__errors, width: document.documentElement.scrollWidth,
    resources: performance.getEntriesByType('resource').map(r => r.name)};
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def _chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={user_data}", "--enable-logging=stderr",
            "--v=0", *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def console_messages(stderr: str) -> list[str]:
    """Messages the page wrote to the console, as Chromium logs them with --enable-logging."""
    return re.findall(r":CONSOLE[^\]]*\] (.*)", stderr)


def render_in_browser(html_path: Path, work: Path) -> tuple[dict, list[str]]:
    """Open a copy of the page (with MEASURE injected) at a laptop's width, served from a local
    HTTP server so the browser's resource timing sees every fetch; returns the measurements
    and the console messages."""

    page = work / "measured.html"
    page.write_text(
        html_path.read_text(encoding="utf-8").replace("</head>", MEASURE + "</head>", 1),
        encoding="utf-8",
    )
    handler = functools.partial(_QuietHandler, directory=str(work))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            done = _chromium(
                "--window-size=1366,900", "--virtual-time-budget=5000", "--dump-dom",
                f"http://127.0.0.1:{server.server_port}/{page.name}",
                user_data=work / "profile-measure",
            )  # fmt: skip
        finally:
            server.shutdown()
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page did not finish loading in Chromium:\n{done.stderr[-2000:]}"
    text = found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
    return json.loads(text.replace("&amp;", "&")), console_messages(done.stderr)


class _Metrics(HTMLParser):
    """data-metric values of the summary and data-rag cells of the scorecard."""

    def __init__(self):
        super().__init__()
        self.metrics: dict[str, str] = {}
        self.rag: dict[tuple[str, str], str] = {}
        self.stale: dict[tuple[str, str], bool] = {}
        #: red-flag table cells: (flag key, field) -> (data-number or None, shown text)
        self.flags: dict[tuple[str, str], tuple[float | None, str]] = {}
        #: QTL table cells: (study|qtl, field) -> shown text; data-status per QTL
        self.qtls: dict[tuple[str, str], str] = {}
        self.qtl_status: dict[str, str] = {}
        #: needs-attention items: (kind, text)
        self.attention: list[tuple[str, str]] = []
        self._metric: str | None = None
        self._in_value = False
        self._cell: tuple | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-metric" in a:
            self._metric = a["data-metric"]
        if self._metric and a.get("class") == "value":
            self._in_value = True
        if "data-rag" in a:
            self.rag[(a["data-smo"], a["data-kpi"])] = a["data-rag"]
        if "data-stale" in a and "data-feed" in a:
            self.stale[(a["data-smo"], a["data-feed"])] = a["data-stale"] == "true"
        if "data-field" in a and "data-flag" in a:
            number = a.get("data-number")
            self._cell = ("flag", a["data-flag"], a["data-field"], number)
        elif "data-field" in a and "data-qtl" in a:
            self._cell = ("qtl", a["data-qtl"], a["data-field"], None)
            if "data-status" in a:
                self.qtl_status[a["data-qtl"]] = a["data-status"]
        elif "data-attention" in a:
            self._cell = ("attention", a["data-attention"], None, None)
        if self._cell and tag in ("td", "li"):
            self._text = []

    def handle_endtag(self, tag):
        if self._cell is None or tag not in ("td", "li"):
            return
        kind, key, field_name, number = self._cell
        text = "".join(self._text).strip()
        if kind == "flag":
            self.flags[(key, field_name)] = (None if number is None else float(number), text)
        elif kind == "qtl":
            self.qtls[(key, field_name)] = text
        else:
            self.attention.append((key, text))
        self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)
        if self._in_value:
            self.metrics[self._metric] = data.strip()
            self._in_value, self._metric = False, None


def _parse(html: str) -> _Metrics:
    parser = _Metrics()
    parser.feed(html)
    return parser


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def site_chart_id(smo: str, study: str, site: str, kri: str) -> str:
    """The id of a flagged site's chart of one red KRI (written out here, not imported)."""
    return (
        re.sub(r"[^A-Za-z0-9_-]", "-", f"site-{smo}-{study}-{site}") + "-" + kri.replace("_", "-")
    )


def _has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where table_name = ?", [table]
        ).fetchone()[0]
    )


def representativeness_chart_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Per study with a plan (latest week of enrollment_representativeness): a chart per
    dimension and one trend chart when a group has a minimum; none before the mart exists."""
    if not _has_table(con, "enrollment_representativeness"):
        return set()
    rows = con.execute(
        "select distinct study_id, dimension, minimum_share is not null "
        "from enrollment_representativeness where level = 'study' and plan_id is not null "
        "and as_of_date = (select max(as_of_date) from enrollment_representativeness)"
    ).fetchall()
    ids = {f"representativeness-{study}-{dimension}" for study, dimension, _ in rows}
    ids |= {f"representativeness-{study}-trend" for study, _, has_minimum in rows if has_minimum}
    return {re.sub(r"[^A-Za-z0-9_-]", "-", i) for i in ids}


def _expected_charts(con: duckdb.DuckDBPyConnection) -> set[str]:
    studies = con.execute(
        "select count(*) from study_enrollment "
        "where as_of_date = (select max(as_of_date) from study_enrollment)"
    ).fetchall()[0][0]
    kris = con.execute(
        "select distinct kri_id from site_flags where comparison_group = 'portfolio' "
        "and method = 'funnel' and as_of_date = (select max(as_of_date) from site_flags)"
    ).fetchall()
    red = con.execute(
        "select smo_id, study_id, site_id, kri_id from site_flags where comparison_group = "
        "'study' and flag = 'red' and as_of_date = (select max(as_of_date) from site_flags)"
    ).fetchall()
    return (
        representativeness_chart_ids(con)
        | {site_chart_id(*flag) for flag in red}
        | {f"enrollment-{i + 1}" for i in range(studies)}
        | {f"funnel-{k.replace('_', '-')}" for (k,) in kris}
        | {"trend-important-deviation-rate", "trend-deviations-per-visit", "payment-aging",
           "entry-lag", "registry-benchmark"}
    )  # fmt: skip


@pytest.fixture(scope="module")
def published(refreshed_portfolio: Path) -> Path:
    return refreshed_portfolio / "publish"


def test_the_report_is_written_beside_the_published_file_for_this_publish(published: Path):
    with duckdb.connect(str(published_path(published)), read_only=True) as con:
        publish_id = con.execute("select publish_id from meta").fetchall()[0][0]
    latest = published / REPORT_NAME
    assert latest.is_file()
    kept = published / REPORTS_DIR / f"oversight-report-{publish_id}.html"
    assert kept.read_bytes() == latest.read_bytes()
    assert publish_id in latest.read_text(encoding="utf-8")


def test_headline_numbers_equal_the_published_marts(published: Path):
    html = (published / REPORT_NAME).read_text(encoding="utf-8")
    page = _parse(html)
    with duckdb.connect(str(published_path(published)), read_only=True) as con:

        def one(sql: str):
            return con.execute(sql).fetchall()[0][0]

        latest = "as_of_date = (select max(as_of_date) from {t})"
        as_of = one("select max(as_of_date) from study_enrollment")
        expected = {
            "studies": one("select count(distinct study_id) from site_enrollment where "
                           + latest.format(t="site_enrollment")),
            "sites_activated": one("select count(*) from site_enrollment where is_activated and "
                                   + latest.format(t="site_enrollment")),
            # randomized from the site mart; the report reads the forecast's study totals
            "randomized": one("select sum(subjects_randomized) from site_enrollment where "
                              + latest.format(t="site_enrollment")),
            "red_flags": one("select count(*) from site_flags where flag = 'red' and "
                             "comparison_group = 'study' and " + latest.format(t="site_flags")),
            "deliveries_rejected_this_week": one(
                "select count(*) from delivery_log where status = 'REJECTED' and "
                f"delivery_date between date '{as_of}' - 6 and date '{as_of}'"),
            "stale_feeds": one("select count(*) filter (where is_stale) from feed_freshness "
                               "where " + latest.format(t="feed_freshness")),
        }  # fmt: skip
        scorecard = {
            (smo, kpi): rag
            for smo, kpi, rag in con.execute(
                "select smo_id, kpi_id, rag from smo_scorecard where rag is not null and "
                + latest.format(t="smo_scorecard")
            ).fetchall()
        }
        freshness = {
            (smo, feed): stale
            for smo, feed, stale in con.execute(
                "select smo_id, feed, is_stale from feed_freshness where "
                + latest.format(t="feed_freshness")
            ).fetchall()
        }
    shown = {key: _number(page.metrics[key]) for key in expected}
    assert shown == expected
    assert expected["studies"] > 0 and expected["randomized"] > 0
    assert f"as of {as_of}" in html
    assert page.rag == scorecard and scorecard
    assert page.stale == freshness and freshness


def test_the_report_fetches_nothing(published: Path):
    html = (published / REPORT_NAME).read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html


@needs_chromium
def test_the_report_renders_in_chromium_with_every_chart(published: Path, tmp_path: Path):
    with duckdb.connect(str(published_path(published)), read_only=True) as con:
        expected = _expected_charts(con)
    measured, console = render_in_browser(published / REPORT_NAME, tmp_path)
    assert console == [], f"console messages: {console}"
    assert measured["errors"] == [] and measured["resources"] == []
    assert measured["width"] <= 1366, "the page scrolls sideways on a laptop screen"
    charts = {c["id"]: c for c in measured["charts"]}
    assert set(charts) == expected
    for chart in charts.values():
        assert chart["width"] >= 400 and chart["height"] >= 200, chart
        assert chart["title"], chart
        assert len(chart["axes"]) == 2 and all(chart["axes"]), chart
        assert all("(" in axis or axis in ("date", "SMO", "as-of week", "study")
                   for axis in chart["axes"]), f"axis without unit: {chart}"  # fmt: skip
        assert chart["marks"] > 0, chart

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "oversight-report.png"
    screenshot.unlink(missing_ok=True)
    _chromium(
        "--window-size=1366,3000", "--hide-scrollbars", f"--screenshot={screenshot}",
        (published / REPORT_NAME).as_uri(), user_data=tmp_path / "profile-shot",
    )  # fmt: skip
    assert screenshot.stat().st_size > 50_000, "the screenshot looks blank"


@needs_chromium
def test_console_errors_and_fetches_would_be_caught(tmp_path: Path):
    """The browser test's detectors see a page that logs an error and fetches a file."""
    page = tmp_path / "broken.html"
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    page.write_text(
        "<html><head></head><body><script>console.error('chart failed')</script>"
        '<img src="missing.png"><img src="logo.svg"><figure data-chart="x"></figure></body></html>'
    )
    measured, console = render_in_browser(page, tmp_path)
    assert any("chart failed" in m for m in console)
    assert any("missing.png" in e for e in measured["errors"])
    assert any("logo.svg" in r for r in measured["resources"])
    assert measured["charts"][0]["width"] == 0


def test_a_missed_weekly_delivery_makes_the_feeds_stale_in_the_mart_check_and_report(
    project_env: Path, small_portfolio: Path, monkeypatch: pytest.MonkeyPatch, dagster_instance
):
    """One SMO sends nothing in the last week: its feeds are 7 days old, stale against a 6-day
    threshold; the warning check names them, the run still publishes, the report counts them."""
    from orchestration.demo import refresh_job

    shutil.copytree(small_portfolio, project_env / "data")
    truth = json.loads((small_portfolio / "ground_truth.json").read_text())
    last = truth["delivery_dates"][-1].replace("-", "")
    silent = truth["smos"][0]["smo_id"]
    removed = [p for p in (project_env / "data" / "inbox" / silent).iterdir() if last in p.name]
    assert removed, f"no files of {last} for {silent}"
    for path in removed:
        path.unlink()
    monkeypatch.setenv("SMO_STALE_FEED_AFTER_DAYS", "6")

    result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)

    assert result.success
    [check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "stale_feeds"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    feeds = set(truth["smos"][0]["feeds"])
    assert check.metadata["stale_feeds"].value == len(feeds)
    assert silent in check.description
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        stale = con.execute(
            "select smo_id, feed, age_days from marts.feed_freshness where is_stale and "
            "as_of_date = (select max(as_of_date) from marts.feed_freshness)"
        ).fetchall()
    assert {(smo, feed) for smo, feed, _ in stale} == {(silent, f) for f in feeds}
    assert {age for *_, age in stale} == {7}
    page = _parse((project_env / "publish" / REPORT_NAME).read_text(encoding="utf-8"))
    assert _number(page.metrics["stale_feeds"]) == len(feeds)
    assert {k for k, v in page.stale.items() if v} == {(silent, f) for f in feeds}


def test_a_benchmark_without_enough_peers_shows_why_never_pnan():
    from publishing.report_data import Registry
    from publishing.report_html import registry

    def row(study, peers, percentile, reason):
        return {"study_id": study, "nct_id": f"NCT0000000{study[-1]}", "enrollment_rate": 1.2,
                "peer_studies": peers, "peer_p25_rate": None, "peer_median_rate": None,
                "peer_p75_rate": None, "peer_percentile": percentile,
                "peer_percentile_reason": reason}  # fmt: skip

    benchmark = [
        row("S1", 3, None, "too few peers (3)"),
        row("S2", 12, 41.7, None),
        row("S3", 0, float("nan"), None),  # a publish from before the minimum cohort
    ]
    html = registry(Registry(benchmark=benchmark, hygiene=[])).html
    assert "too few peers (3)" in html
    assert "P42 of 12 peers" in html
    assert "no percentile (0 peers)" in html
    assert not re.search(r"\bnan\b|Pnan|None peers", html, re.IGNORECASE)


def _flag_ages(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, int]]:
    """Per red flag of the latest week, its episode's status and age in weeks (flag_status)."""
    return {
        f"{smo}|{study}|{site}|{kri}": (status, age)
        for smo, study, site, kri, status, age in con.execute(
            "select smo_id, study_id, site_id, kri_id, status, age_weeks from flag_status "
            "where comparison_group = 'study' and flag = 'red' "
            "and as_of_date = (select max(as_of_date) from flag_status)"
        ).fetchall()
    }


def test_every_red_flag_and_qtl_shows_the_marts_numbers(published: Path):
    """Each red flag of the latest week is in the report with the site's value, its study's
    value, the z-score, the red threshold, numerator, denominator and its episode's age
    (flag_status); each QTL with its value, limit and status; needs attention lists every QTL
    exceedance without evaluation and every red flag whose episode is new this week: all equal
    to independent queries."""
    page = _parse((published / REPORT_NAME).read_text(encoding="utf-8"))
    with duckdb.connect(str(published_path(published)), read_only=True) as con:
        flags = con.execute(
            "select smo_id || '|' || study_id || '|' || site_id || '|' || kri_id, value, "
            "group_value, case when method = 'funnel' then z_score end, red_threshold, "
            "numerator, denominator from site_flags where comparison_group = 'study' and "
            "flag = 'red' and as_of_date = (select max(as_of_date) from site_flags)"
        ).fetchall()
        ages = _flag_ages(con)
        # the newest open action on each red flag (site x KRI), independently of report_data
        open_actions = dict(
            con.execute(
                "select smo_id || '|' || study_id || '|' || site_id || '|' || kri_id, "
                "arg_max(action_id, opened_date) from oversight_actions "
                "where target_type = 'SITE_FLAG' and status in ('OPEN', 'IN_PROGRESS') group by all"
            ).fetchall()
        )
        unattended = con.execute(
            "select count(*) from unattended_signals where state = 'unattended' and is_open "
            "and as_of_date = (select max(as_of_date) from unattended_signals)"
        ).fetchone()[0]
        overdue = sorted(
            r[0]
            for r in con.execute(
                "select action_id from oversight_actions where is_overdue"
            ).fetchall()
        )
        qtls = con.execute(
            "select study_id || '|' || qtl_id, value, limit_value, qtl_status from study_qtls "
            "where as_of_date = (select max(as_of_date) from study_qtls)"
        ).fetchall()
    assert flags, "the small portfolio has no red flag: the test would prove nothing"
    fields = ("value", "group_value", "z_score", "red_threshold", "numerator", "denominator")
    expected = {
        (key, name): number
        for key, *numbers in flags
        for name, number in zip(fields, numbers, strict=True)
    }
    expected |= {(key, "flag_age_weeks"): ages[key][1] for key, *_ in flags}
    shown = {
        cell: number
        for cell, (number, _) in page.flags.items()
        if cell[1] not in ("kri", "open_action")
    }
    assert shown.keys() == expected.keys()
    for cell, number in expected.items():
        if number is None:
            assert shown[cell] is None, cell
        else:
            assert shown[cell] == pytest.approx(number, rel=1e-9, abs=1e-12), cell
        text = page.flags[cell][1]
        if cell[1] != "flag_age_weeks":
            assert text and (number is None) == (text == "–"), (cell, text)
    for (key, name), (_, text) in page.flags.items():
        if name == "flag_age_weeks":
            assert (text == "new this week") == (ages[key][0] == "new"), (key, text)
        if name == "open_action":
            action = open_actions.get(key)
            assert (text == "none") == (action is None), (key, text)
            assert action is None or text.startswith(f"{action} "), (key, text)

    assert set(page.qtl_status) == {key for key, *_ in qtls} and qtls
    for key, value, limit, status in qtls:
        assert page.qtl_status[key] == status
        shown_value = page.qtls[(key, "value")]
        assert (shown_value == "–") == (value is None)
        if value is not None:
            assert float(shown_value.replace(",", "")) == pytest.approx(value, abs=5e-4)
        assert float(page.qtls[(key, "limit_value")][2:]) == pytest.approx(limit, abs=5e-4)

    due = [key for key, *_, status in qtls if status == "exceeded_evaluation_due"]
    new = sorted(key for key, *_ in flags if ages[key][0] == "new")
    attention_qtls = [text for kind, text in page.attention if kind == "qtl"]
    attention_flags = [text for kind, text in page.attention if kind == "red-flag"]
    assert len(attention_qtls) == len(due) and len(attention_flags) == len(new)
    for key in due:
        study, _ = key.split("|")
        assert any(study in text for text in attention_qtls), key
    for key in new:
        _smo, _study, site, _kri = key.split("|")
        assert any(f"{site} (" in text for text in attention_flags), key
    # (the 3-week portfolio may have none: test_marts_ground_truth checks the demo's planted ones)
    assert sum(kind == "unattended" for kind, _ in page.attention) == unattended
    overdue_shown = sorted(t.split()[2] for kind, t in page.attention if kind == "overdue-action")
    assert overdue_shown == overdue


def test_red_flag_and_qtl_lines_say_value_comparator_test_and_age():
    """The sentences of needs attention: a funnel flag names its z-score and limit, a fixed
    flag its value limit; new and persisting flags read differently; a QTL names its limit."""
    from publishing.report_html import qtl_line, red_flag_line

    def flag(method, z, weeks, action=None):
        return {"site_id": "AM0011", "smo_id": "SMO-A", "study_id": "ST-1",
                "kri_id": "important_deviation_rate", "kri_label": "Important deviation rate",
                "kri_unit": "per 1,000 subject-days", "method": method, "direction": "both",
                "value": 19.4, "group_value": 3.3, "z_score": z, "red_threshold": 3.0,
                "numerator": 12, "denominator": 618.5,
                "flag_status": "new" if weeks == 1 else "persisting", "flag_age_weeks": weeks,
                "first_flagged_week": "2026-10-05", "risk_score": 40.0,
                "open_action": action}  # fmt: skip

    funnel = red_flag_line(flag("funnel", 9.71, 1))
    assert (
        "Important deviation rate 19.4 per 1,000 subject-days vs 3.3 per 1,000 subject-days "
        "for its study"
    ) in funnel
    assert "z = 9.7, red at |z| > 3" in funnel and "new this week" in funnel
    assert "12 of 618.5" in funnel and "40.0/100" in funnel
    fixed = red_flag_line(flag("fixed", None, 6))
    assert "red at |value| > 3 per 1,000 subject-days" in fixed
    assert "flagged 6 weeks (since 2026-10-05)" in fixed and "z =" not in fixed
    assert "no open action" in fixed
    acted = red_flag_line(flag("funnel", 9.71, 2, {"action_id": "A-7", "status": "OPEN",
                          "opened_date": "2026-10-06", "due_date": "2026-10-20",
                          "owner": "CRA lead", "action_text": "call the site"}))  # fmt: skip
    assert "A-7 OPEN (opened 2026-10-06, due 2026-10-20; CRA lead): call the site" in acted
    qtl = qtl_line({"study_id": "ST-1", "description": "important eligibility deviations per "
                    "randomized subject", "direction": "high", "value": 0.0794,
                    "limit_value": 0.05, "numerator": 5, "denominator": 63,
                    "weeks_exceeded": 3})  # fmt: skip
    assert "0.079 above the limit 0.05 (5 of 63), exceeded 3 weeks in a row" in qtl


class _Blocks(HTMLParser):
    """What a reader sees of the exported tables, the flagged sites' blocks and every link: the
    rows of each `div[data-csv]` table and each site's episodes table (cell text, a unit under a
    label in parentheses, week-on-week arrows left out), each chart's points per series
    (`data-x`, `data-y`), the site blocks and every href."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.episodes: dict[str, list[list[str]]] = {}
        self.points: dict[str, dict[str, list[tuple[str, float]]]] = {}
        self.site_charts: dict[str, list[str]] = {}
        self.kri_cells: dict[str, tuple[str, str]] = {}
        self.hrefs: list[str] = []
        self.csv_links: dict[str, str] = {}
        self._table: list[list[str]] | None = None
        self._site: str | None = None
        self._chart: str | None = None
        self._cell: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "href" in a:
            self.hrefs.append(a["href"])
            if "data-csv-link" in a:
                self.csv_links[a["data-csv-link"]] = a["href"]
        if tag == "div" and "data-csv" in a:
            self._table = self.tables.setdefault(a["data-csv"], [])
        elif tag == "article" and "data-site" in a:
            self._site = a["data-site"]
            self.site_charts[self._site] = []
        elif tag == "table" and a.get("class") == "episodes":
            self._table = self.episodes.setdefault(self._site, [])
        elif tag == "figure" and "data-chart" in a:
            self._chart = a["data-chart"]
            if self._site:
                self.site_charts[self._site].append(self._chart)
        elif tag == "circle" and "data-y" in a and self._chart:
            series = self.points.setdefault(self._chart, {}).setdefault(a["data-series"], [])
            series.append((a["data-x"], float(a["data-y"])))
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
            if a.get("data-field") == "kri":
                self.kri_cells[a["data-flag"]] = (a["data-label"], a["data-unit"])
        elif self._cell is not None:
            if tag == "span" and "arrow" in (a.get("class") or ""):
                self._skip += 1
            elif tag == "small":
                self._cell.append(" (")
            elif tag == "br":
                self._cell.append(" ")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "span" and self._skip:
            self._skip -= 1
        elif tag == "small" and self._cell is not None:
            self._cell.append(")")
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._chart = None
        elif tag == "article":
            self._site = None

    def handle_data(self, data):
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def _blocks(html: str) -> _Blocks:
    parser = _Blocks()
    parser.feed(html)
    return parser


def _csv_rows(path: Path) -> list[list[str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_red_flags_name_kris_as_the_published_definitions(published: Path):
    """Every red flag's KRI label and unit are the published kri_catalog's (independent query),
    and the catalog is the reviewed seed, row for row."""
    import csv

    page = _blocks((published / REPORT_NAME).read_text(encoding="utf-8"))
    with duckdb.connect(str(published_path(published)), read_only=True) as con:
        expected = {
            f"{smo}|{study}|{site}|{kri}": (label, unit)
            for smo, study, site, kri, label, unit in con.execute(
                "select f.smo_id, f.study_id, f.site_id, f.kri_id, k.label, k.unit "
                "from site_flags as f join kri_catalog as k using (kri_id) where k.level = "
                "'site' and f.comparison_group = 'study' and f.flag = 'red' "
                "and f.as_of_date = (select max(as_of_date) from site_flags)"
            ).fetchall()
        }
        catalog = con.execute(
            "select kri_id, level, label, unit, red_threshold, version from kri_catalog"
        ).fetchall()
    assert expected and page.kri_cells == expected
    seed = PROJECT_ROOT / "dbt_project" / "seeds" / "kri_definitions.csv"
    with open(seed, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(catalog) == sorted(
        (r["kri_id"], r["level"], r["label"], r["unit"], float(r["red_threshold"]), r["version"])
        for r in rows
    )
    # the red-flag table (and its CSV) shows each label with its unit
    shown = {row[3] for row in page.tables["red-flags"][1:]}
    assert shown == {f"{label} ({unit})" for label, unit in expected.values()}


def test_every_flagged_site_has_a_block_with_its_kris_week_by_week(published: Path):
    """One block per site with a red flag this week; a chart per red KRI whose site points are
    kpi_weekly_history's site rows and whose study points are the study rows (independent
    queries); its flag history is flag_episodes' rows for the site."""
    page = _blocks((published / REPORT_NAME).read_text(encoding="utf-8"))
    with duckdb.connect(str(published_path(published)), read_only=True) as con:
        red = con.execute(
            "select smo_id, study_id, site_id, kri_id from site_flags where comparison_group = "
            "'study' and flag = 'red' and as_of_date = (select max(as_of_date) from site_flags)"
        ).fetchall()

        def history(level: str, smo, study, site, kri) -> list[tuple[str, float]]:
            where = "smo_id = ? and site_id = ?" if level == "site" else "true"
            args = [smo, site] if level == "site" else []
            return [
                (str(week), value)
                for week, value in con.execute(
                    "select as_of_date, value from kpi_weekly_history where level = ? and "
                    "study_id = ? and kpi_id = (select kpi_id from kri_catalog where kri_id = ? "
                    f"and level = 'site') and value is not null and {where} order by 1",
                    [level, study, kri, *args],
                ).fetchall()
            ]

        trends = {flag: (history("site", *flag), history("study", *flag)) for flag in red}
        episodes = {
            site: n
            for site, n in con.execute(
                "select smo_id || '|' || study_id || '|' || site_id, count(*) from flag_episodes "
                "where comparison_group = 'study' and as_of_date = "
                "(select max(as_of_date) from flag_episodes) group by 1"
            ).fetchall()
        }
    assert red, "no red flag: the test would prove nothing"
    assert set(page.site_charts) == {f"{smo}|{study}|{site}" for smo, study, site, _ in red}
    for (smo, study, site, kri), (site_points, study_points) in trends.items():
        chart = site_chart_id(smo, study, site, kri)
        assert chart in page.site_charts[f"{smo}|{study}|{site}"]
        assert site_points, (chart, "no weekly value for a red KRI")
        shown = page.points[chart]
        assert [w for w, _ in shown[site]] == [w for w, _ in site_points]
        assert [v for _, v in shown[site]] == pytest.approx([v for _, v in site_points])
        assert [w for w, _ in shown["study"]] == [w for w, _ in study_points]
        assert [v for _, v in shown["study"]] == pytest.approx([v for _, v in study_points])
    for key in page.site_charts:
        assert len(page.episodes[key]) - 1 == episodes[key], key  # the header row


def test_every_csv_linked_exists_beside_the_report_and_holds_the_tables_rows(published: Path):
    """Each CSV link is relative, resolves beside the latest report and beside its kept copy,
    and the file holds exactly the header and rows of the table shown; the flag history CSV
    holds every site block's rows, the site first."""
    html = (published / REPORT_NAME).read_text(encoding="utf-8")
    page = _blocks(html)
    with duckdb.connect(str(published_path(published)), read_only=True) as con:
        publish_id = con.execute("select publish_id from meta").fetchall()[0][0]
        # the mart's rows, not a table shown (tests/test_report_representativeness.py)
        extra = (
            {"representativeness"} if _has_table(con, "enrollment_representativeness") else set()
        )
    kept = published / REPORTS_DIR
    assert set(page.csv_links) == {"scorecard", "red-sites", "red-flags", "flag-history",
                                   "qtls"} | extra  # fmt: skip
    for href in page.hrefs:
        assert not re.match(r"^([a-z]+:|/)", href, re.I), f"not a relative link: {href}"
    for name, href in page.csv_links.items():
        assert href == f"oversight-report-{publish_id}-csv/{name}.csv"
        latest, copy = published / href, kept / href
        assert latest.is_file() and copy.is_file(), href
        assert latest.read_bytes() == copy.read_bytes()
        rows = _csv_rows(latest)
        if name == "flag-history":
            by_site = {}
            for row in rows[1:]:
                by_site.setdefault("|".join(row[:3]), []).append(row[3:])
            assert rows[0][3:] == page.episodes[next(iter(page.episodes))][0]
            assert by_site == {k: v[1:] for k, v in page.episodes.items() if len(v) > 1}
        elif name not in extra:
            assert rows == page.tables[name], name
    assert len(page.tables["red-flags"]) > 1 and len(page.tables["qtls"]) > 1


def test_old_reports_take_their_csvs_with_them(published: Path, tmp_path: Path):
    """A new publish's report replaces the latest CSV folder and, beyond `keep`, the kept
    report's folder goes with its report; nothing half-written stays."""
    from publishing.report import write_report

    work = tmp_path / "publish"
    shutil.copytree(published, work, symlinks=True)
    first = write_report(work, keep=1)
    with duckdb.connect(str(published_path(work))) as con:
        con.execute("update meta set publish_id = publish_id || 'b'")
    killed = work / f".oversight-report-{first.publish_id}x-csv.partial"  # a killed write's
    killed.mkdir()
    (killed / "red-flags.csv").write_text("site\n")
    second = write_report(work, keep=1)
    folders = sorted(p.name for p in work.glob("*-csv"))
    assert folders == [f"oversight-report-{second.publish_id}-csv"]
    assert sorted(p.name for p in (work / REPORTS_DIR).iterdir()) == sorted(
        [f"oversight-report-{second.publish_id}-csv", f"oversight-report-{second.publish_id}.html"]
    )
    assert first.publish_id != second.publish_id and second.csvs
    assert all(p.parent.name == folders[0] for p in second.csvs)
    assert not [p for p in work.rglob(".*") if "csv" in p.name]  # no unfinished folder


def test_actions_are_read_from_the_published_file_when_it_has_them(published: Path, tmp_path):
    """The actions hook: no `oversight_actions` table, no actions (the page says so); a publish
    with one shows a site's actions in its block and the open one beside its red flag."""
    from publishing.report import render

    copy = tmp_path / "oversight.duckdb"
    shutil.copy2(published_path(published), copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("drop table if exists oversight_actions")
    before = render(copy).html
    assert "No action recorded." in before
    with duckdb.connect(str(copy)) as con:
        smo, study, site, kri = con.execute(
            "select smo_id, study_id, site_id, kri_id from site_flags where comparison_group = "
            "'study' and flag = 'red' and as_of_date = (select max(as_of_date) from site_flags) "
            "order by all limit 1"
        ).fetchall()[0]
        con.execute(
            "create or replace table oversight_actions as select * from (values "
            "('ACT-1', ?, ?, ?, 'OPEN', date '2026-11-10', date '2026-11-24', 'CRA lead', "
            "'retrain the site on eligibility', null)) as t(action_id, study_id, site_id, "
            "kri_id, status, opened_date, due_date, owner, action_text, closed_date)",
            [study, site, kri],
        )
    page = _parse(render(copy).html)
    key = f"{smo}|{study}|{site}|{kri}"
    assert page.flags[(key, "open_action")][1].startswith("ACT-1 OPEN (opened 2026-11-10")
    assert "retrain the site on eligibility" in render(copy).html
