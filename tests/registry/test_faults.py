"""Issue 18: registry faults are isolated per study. One failing study lookup or peer-cohort
search (replay or live) is recorded with its study, request and error, the other studies are
fetched and stored, and the next run asks for the failed one again in full; only a failure of
every request fails the fetch. Replay answers any condition text the API accepts."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ingest.registry import RegistryClient, RegistryError, ReplaySource
from ingest.registry import store as registry_store
from orchestration.defs.registry import registry_studies
from orchestration.lib.warehouse import DuckDBWarehouse
from tests.conftest import project_instance

AUD = "Alcohol Use Disorder (AUD)"


def _ids(small_portfolio: Path) -> list[str]:
    truth = json.loads((small_portfolio / "ground_truth.json").read_text())["registry"]
    return truth["portfolio_nct_ids"]


def _condition(replay: Path, nct_id: str) -> str:
    record = json.loads((replay / "studies" / f"{nct_id}.json").read_text())
    return record["protocolSection"]["conditionsModule"]["conditions"][0]


def _rename_condition(replay: Path, old: str, new: str) -> None:
    """Give a portfolio study and its peers a condition name with parentheses."""
    for path in (replay / "studies").glob("NCT*.json"):
        record = json.loads(path.read_text())
        conditions = record["protocolSection"]["conditionsModule"]["conditions"]
        if old in conditions:
            record["protocolSection"]["conditionsModule"]["conditions"] = [
                new if c == old else c for c in conditions
            ]
            path.write_text(json.dumps(record))


def _run(con, source, ids):
    registry_store.ensure_schema(con)
    since = registry_store.previous_data_timestamp(con)
    stored = {
        n: r for n, (role, r) in registry_store.latest_records(con).items() if role == "portfolio"
    }
    summary = registry_store.fetch_registry(
        source, ids, since=since, stored=stored, peer_start_within_years=10, peer_cohort_max=500,
        retry=registry_store.previous_failures(con) if since else [],
    )  # fmt: skip
    registry_store.store(con, summary, source_name="test", requests=0, retries=0)
    registry_store.rebuild_flat_tables(con)
    return summary


def _peers_of(con, condition: str) -> int:
    return con.execute(
        "select count(distinct nct_id) from registry.studies s join registry.conditions c using (nct_id) "
        "where s.role = 'peer' and c.condition = ?",
        [condition],
    ).fetchone()[0]


@pytest.fixture
def replay(small_portfolio: Path, tmp_path: Path) -> Path:
    target = tmp_path / "registry"
    shutil.copytree(small_portfolio / "registry", target)
    return target


@pytest.mark.parametrize(
    "query",
    [AUD, '"Alcohol Use Disorder"', "Alcohol Use Disorder, AUD", "(alcohol OR opioid) AUD",
     "AUD NOT cancer"],
)  # fmt: skip
def test_replay_answers_condition_text_the_api_accepts(replay, small_portfolio, query):
    ids = _ids(small_portfolio)
    old = _condition(replay, ids[2])
    _rename_condition(replay, old, AUD)
    result = ReplaySource(replay).search_studies({"query.cond": query})
    assert ids[2] in result.nct_ids and len(result.nct_ids) == 11  # the study and its 10 peers


@pytest.mark.parametrize("query", ["AUD AND", "(AUD", "AREA[Condition]AUD", "OR"])
def test_replay_degrades_to_no_match_with_a_warning_never_an_exception(replay, query, caplog):
    result = ReplaySource(replay).search_studies({"query.cond": query})
    assert result.studies == []
    assert "replay cannot evaluate" in caplog.text


def test_one_failing_peer_search_in_replay_is_recorded_and_the_rest_is_stored(
    replay, small_portfolio, tmp_path
):
    """A recorded search answered with an HTML page (what a proxy error looks like)."""
    ids = _ids(small_portfolio)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    first = _run(con, ReplaySource(replay), ids)
    assert first.failures == []
    broken = _condition(replay, ids[1])
    before = _peers_of(con, broken)
    assert before == 10

    # the registry moves on; the cohort search of ids[1] now answers an HTML page
    (replay / "version.json").write_text(json.dumps({"dataTimestamp": "2026-12-02T09:00:00"}))
    html = "<html><body>502 Bad Gateway</body></html>"
    for phase in ("PHASE2", "PHASE3"):
        recorded = registry_store.incremental_params(
            registry_store.peer_cohort_params(broken, phase, start_within_years=10),
            "2026-11-16T09:00:00",
        )
        (replay / "searches").mkdir(exist_ok=True)
        (replay / "searches" / f"broken_{phase}.json").write_text(
            json.dumps({"request": {"params": recorded}, "pages": [html]})
        )
    second = _run(con, ReplaySource(replay), ids)
    [failure] = second.failures
    assert failure["studies"] == [ids[1]]
    assert failure["what"].startswith(f"peer-cohort search {broken}")
    assert "expected a JSON object" in failure["error"] and "query.cond" in failure["request"]
    assert _peers_of(con, broken) == before  # the previous cohort stays in use
    (stored,) = con.execute(
        "select failures::varchar from registry.fetches order by fetched_at desc limit 1"
    ).fetchone()
    assert json.loads(stored)[0]["studies"] == [ids[1]]

    # fixed: the next run asks for that cohort again in full (not only updates since)
    shutil.rmtree(replay / "searches")
    (replay / "version.json").write_text(json.dumps({"dataTimestamp": "2026-12-03T09:00:00"}))
    third = _run(con, ReplaySource(replay), ids)
    assert third.failures == []
    peers = {
        r["protocolSection"]["identificationModule"]["nctId"]
        for role, r in third.records
        if role == "peer"
    }
    assert len(peers) == 10  # the failed cohort, in full; the others unchanged since
    assert registry_store.previous_failures(con) == []


def _studies_handler(replay: Path, failing_condition: str):
    """A registry on a local HTTP server answering from the replay directory, except the
    failing condition's peer search, which answers 500 every time."""
    source = ReplaySource(replay)

    def handle(request: Request) -> Response:
        params = {k: v for k, v in request.args.items()}
        if params.get("query.cond") == failing_condition:
            return Response("<html>Internal Server Error</html>", 500, content_type="text/html")
        query = {k: v for k, v in params.items() if k not in ("pageSize", "countTotal",
                                                              "fields", "pageToken")}  # fmt: skip
        result = source.search_studies(query, page_size=1000)
        return Response(json.dumps({"studies": result.studies, "totalCount": len(result.studies)}),
                        200, content_type="application/json")  # fmt: skip

    return handle


def _client(server: HTTPServer) -> RegistryClient:
    waits: list[float] = []
    return RegistryClient(
        server.url_for("/api/v2"), min_interval_seconds=0.0, max_retries=2, timeout=5.0,
        sleep=waits.append, rng=random.Random(7),
    )  # fmt: skip


def test_a_peer_search_failing_500_after_retries_on_a_live_server_is_isolated(
    httpserver: HTTPServer, replay, small_portfolio, tmp_path
):
    ids = _ids(small_portfolio)
    failing = _condition(replay, ids[2])
    httpserver.expect_request("/api/v2/version").respond_with_json(
        {"dataTimestamp": "2026-11-16T09:00:00"}
    )
    httpserver.expect_request("/api/v2/studies").respond_with_handler(
        _studies_handler(replay, failing)
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with _client(httpserver) as client:
        summary = _run(con, client, ids)
        assert client.stats.retries == 2
    [failure] = summary.failures
    assert failure["studies"] == [ids[2]] and "HTTP 500" in failure["error"]
    assert "gave up after 3 attempt(s)" in failure["error"]
    assert _peers_of(con, failing) == 0
    assert _peers_of(con, _condition(replay, ids[0])) == 10
    assert con.execute("select count(*) from registry.studies where role = 'portfolio'").fetchone()[
        0
    ] == len(ids)


def test_only_when_every_request_fails_does_the_fetch_fail(httpserver: HTTPServer, small_portfolio):
    httpserver.expect_request("/api/v2/version").respond_with_json(
        {"dataTimestamp": "2026-11-16T09:00:00"}
    )
    httpserver.expect_request("/api/v2/studies").respond_with_data("<html>down</html>", 503)
    with (
        _client(httpserver) as client,
        pytest.raises(RegistryError, match="every registry request"),
    ):
        registry_store.fetch_registry(
            client, _ids(small_portfolio), since=None, stored={}, peer_start_within_years=10,
            peer_cohort_max=50,
        )  # fmt: skip


def test_the_registry_step_warns_naming_the_study_and_succeeds(
    project_env, data_dir, small_portfolio, monkeypatch
):
    ids = _ids(small_portfolio)
    replay = data_dir / "registry"
    old = _condition(replay, ids[3])
    _rename_condition(replay, old, AUD)
    # the AUD cohort answers an HTML page; the parentheses themselves are fine
    for phase in ("PHASE2", "PHASE3"):
        params = registry_store.peer_cohort_params(AUD, phase, start_within_years=10)
        (replay / "searches").mkdir(exist_ok=True)
        (replay / "searches" / f"aud_{phase}.json").write_text(
            json.dumps({"request": {"params": params}, "pages": ["<html>oops</html>"]})
        )
    monkeypatch.setenv("SMO_REGISTRY_NCT_IDS", ",".join(ids))
    with project_instance() as instance:
        result = dg.materialize(
            [registry_studies], resources={"warehouse": DuckDBWarehouse()}, instance=instance
        )
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "registry_current" and not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert ids[3] in check.description and AUD in check.description
    with duckdb.connect(str(project_env / "warehouse.duckdb"), read_only=True) as con:
        assert (
            con.execute("select count(*) from registry.studies where role = 'peer'").fetchone()[0]
            == 30
        )
        (failures,) = con.execute("select failures::varchar from registry.fetches").fetchone()
    assert json.loads(failures)[0]["studies"] == [ids[3]]


def test_a_refresh_with_one_failing_peer_search_publishes_every_mart(
    project_env, data_dir, small_portfolio, dagster_instance
):
    """The issue's replay case end to end: a condition with parentheses whose peer search
    answers an HTML page. The refresh succeeds, warns naming the study, and publishes; the
    study without a cohort has no percentile, with the reason, and nothing is NaN."""
    from orchestration.demo import refresh_job

    ids = _ids(small_portfolio)
    replay = data_dir / "registry"
    _rename_condition(replay, _condition(replay, ids[3]), AUD)
    (replay / "searches").mkdir(exist_ok=True)
    for phase in ("PHASE2", "PHASE3"):
        params = registry_store.peer_cohort_params(AUD, phase, start_within_years=10)
        (replay / "searches" / f"aud_{phase}.json").write_text(
            json.dumps({"request": {"params": params}, "pages": ["<html>oops</html>"]})
        )
    result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)
    assert result.success
    [current] = [c for c in result.get_asset_check_evaluations()
                 if c.check_name == "registry_current"]  # fmt: skip
    assert not current.passed and ids[3] in current.description
    published = project_env / "publish" / "oversight.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        (stale,) = con.execute("select registry_stale from meta").fetchone()
        rows = con.execute(
            "select nct_id, peer_studies, peer_percentile, peer_percentile_reason, "
            "isnan(peer_percentile) from registry_benchmark where level = 'study' order by 1"
        ).fetchall()
    assert stale is False
    assert [r[0] for r in rows] == ids
    assert rows[3][1:] == (0, None, "too few peers (0)", None)
    assert all(r[1] == 10 and r[2] is not None and r[4] is False for r in rows[:3])
