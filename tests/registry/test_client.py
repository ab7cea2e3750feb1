"""RegistryClient against a local HTTP server replaying real ClinicalTrials.gov responses.

Recorded responses: ../shared/data/ctgov/api_responses (real API v2 answers, minimised by the
project that captured them). Faults (429, 503, timeouts, broken bodies) are injected around them.
Sleeps go to a fake clock, so nothing really waits except the one deliberately slow handler.
"""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ingest.registry import (
    STUDY_FIELDS,
    RegistryClient,
    RegistryError,
    ReplaySource,
    flatten_studies,
    incremental_search,
    peer_cohort_params,
    search_peer_cohort,
    write_replay_dir,
)
from ingest.registry.client import study_nct_id
from ingest.registry.queries import (
    combine_advanced,
    normalise_phase,
    updated_since_filter,
    with_advanced,
)

from .conftest import FakeClock

PHELAN = {"query.cond": "Phelan-McDermid Syndrome"}
FIELDS_PARAM = ",".join(STUDY_FIELDS)


def make_client(server: HTTPServer, clock: FakeClock, **overrides: Any) -> RegistryClient:
    options: dict[str, Any] = {
        "min_interval_seconds": 0.0,
        "max_retries": 5,
        "timeout": 5.0,
        "sleep": clock.sleep,
        "clock": clock,
        "rng": random.Random(7),
    }
    options.update(overrides)
    return RegistryClient(server.url_for("/api/v2"), **options)


def sent(server: HTTPServer, path: str = "/api/v2/studies") -> list[dict[str, str]]:
    """Query parameters of every request the server received on `path`, in order."""
    out = []
    for request, _ in server.log:
        if request.path != path:
            continue
        for key in request.args:
            assert len(request.args.getlist(key)) == 1, f"{key} sent twice"
        out.append(request.args.to_dict())
    return out


def ids(page: dict[str, Any]) -> list[str]:
    return [study_nct_id(s) for s in page["studies"]]


def expected_backoff(seed: int, count: int, base: float = 1.0, cap: float = 60.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.0, min(cap, base * 2**i)) for i in range(count)]


# --------------------------------------------------------------------------- pagination


def test_phelan_token_chain_repeats_first_page_params(httpserver, clock, load_response):
    page1 = load_response("search_phelan_limit5")
    page2 = load_response("search_phelan_next")
    terminal = load_response("search_phelan_limit50")  # no token: ends the chain
    for page in (page1, page2, terminal):
        httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(page)

    with make_client(httpserver, clock) as client:
        result = client.search_studies(PHELAN, page_size=5)

    first, second, third = sent(httpserver)
    assert first == {**PHELAN, "fields": FIELDS_PARAM, "pageSize": "5", "countTotal": "true"}
    # later pages: the first page's parameters plus pageToken; countTotal only on page 1 (the
    # API adds totalCount to the first page only and ignores the flag afterwards)
    later = {k: v for k, v in first.items() if k != "countTotal"}
    assert second == {**later, "pageToken": page1["nextPageToken"]}
    assert third == {**later, "pageToken": page2["nextPageToken"]}
    assert "totalCount" not in page2  # the recording confirms it

    # the terminal page repeats three studies of page 1: deduplicated by nctId
    assert set(ids(terminal)) <= set(ids(page1))
    assert result.nct_ids == ids(page1) + ids(page2)
    assert result.duplicates_dropped == len(terminal["studies"])
    assert result.pages == 3 and not result.capped
    # totalCount 21 but the recorded pages are minimised: recorded, not fatal
    assert result.total_count == 21
    assert result.count_mismatch is not None and "21" in result.count_mismatch
    assert client.stats.requests == 3 and client.stats.retries == 0
    httpserver.check_assertions()


def test_terminal_page_is_one_request_and_counts_agree(httpserver, clock, load_response):
    terminal = load_response("search_phelan_limit50")
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(terminal)
    with make_client(httpserver, clock) as client:
        result = client.search_studies(PHELAN, fields=["protocolSection.identificationModule"])
    assert len(sent(httpserver)) == 1
    assert result.nct_ids == ids(terminal)
    assert result.total_count == terminal["totalCount"] == len(result.studies)
    assert result.count_mismatch is None
    assert sent(httpserver)[0]["fields"] == "protocolSection.identificationModule"


def test_essie_query_is_sent_verbatim(httpserver, clock, load_response):
    page = load_response("search_nsclc_egfr_l858r")
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(page)
    advanced = 'AREA[Condition]"non-small cell lung cancer" AND AREA[Keyword]L858R'
    with make_client(httpserver, clock) as client:
        result = client.search_studies({"filter.advanced": advanced}, fields=["NCTId"])
    assert sent(httpserver)[0]["filter.advanced"] == advanced
    # a field list without the nctId path gets it added (dedupe needs it)
    assert sent(httpserver)[0]["fields"] == "NCTId"
    assert result.nct_ids == ids(page) and result.count_mismatch is None


def test_fields_without_nct_id_get_it_added(httpserver, clock, load_response):
    httpserver.expect_request("/api/v2/studies").respond_with_json(
        load_response("search_nsclc_egfr_l858r")
    )
    with make_client(httpserver, clock) as client:
        client.search_studies(PHELAN, fields=["protocolSection.statusModule.overallStatus"])
    assert sent(httpserver)[0]["fields"] == (
        "protocolSection.statusModule.overallStatus,protocolSection.identificationModule.nctId"
    )


def test_empty_page_with_token_stops(httpserver, clock, load_response):
    page1 = load_response("search_phelan_limit5")
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(page1)
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(
        {"studies": [], "nextPageToken": "token-after-an-exactly-full-page"}
    )
    with make_client(httpserver, clock) as client:
        result = client.search_studies(PHELAN, page_size=5)
    assert len(sent(httpserver)) == 2
    assert result.nct_ids == ids(page1)
    httpserver.check_assertions()


def test_reserved_params_are_refused(httpserver, clock):
    with make_client(httpserver, clock) as client, pytest.raises(ValueError, match="pageToken"):
        client.search_studies({**PHELAN, "pageToken": "x"})
    with make_client(httpserver, clock) as client, pytest.raises(ValueError, match="page_size"):
        client.search_studies(PHELAN, page_size=1001)
    assert httpserver.log == []


# --------------------------------------------------------------------------- single studies


@pytest.mark.parametrize("nct_id", ["NCT02576665", "NCT06382129", "NCT06604689"])
def test_get_study_replays_real_response(httpserver, clock, load_response, nct_id):
    recorded = load_response(f"get_{nct_id.lower()}")
    httpserver.expect_request(f"/api/v2/studies/{nct_id}").respond_with_json(recorded)
    fields = ["protocolSection.identificationModule", "protocolSection.statusModule"]
    with make_client(httpserver, clock) as client:
        study = client.get_study(nct_id, fields=fields)
    assert study == recorded
    assert sent(httpserver, f"/api/v2/studies/{nct_id}") == [{"fields": ",".join(fields)}]

    # projected records (partial structs, missing modules) flatten to nulls, not errors
    row = flatten_studies([study]).studies.row(0, named=True)
    status = recorded["protocolSection"]["statusModule"]
    assert row["nct_id"] == nct_id
    assert row["overall_status"] == status["overallStatus"]
    raw_start = status["startDateStruct"]["date"]
    assert row["start_date"].isoformat().startswith(raw_start)
    assert row["start_date_precision"] == ("day" if len(raw_start) == 10 else "month")
    assert row["start_date_type"] == status["startDateStruct"].get("type")


def test_get_study_with_wrong_record_raises(httpserver, clock, load_response):
    httpserver.expect_request("/api/v2/studies/NCT02576665").respond_with_json(
        load_response("get_nct06382129")
    )
    with make_client(httpserver, clock) as client, pytest.raises(RegistryError) as err:
        client.get_study("NCT02576665")
    assert "asked for NCT02576665" in str(err.value)
    assert "GET /api/v2/studies/NCT02576665" in str(err.value)


def test_not_found_fails_at_once(httpserver, clock):
    httpserver.expect_request("/api/v2/studies/NCT09999999").respond_with_data(
        '{"message": "not found"}', status=404, content_type="application/json"
    )
    with make_client(httpserver, clock) as client, pytest.raises(RegistryError) as err:
        client.get_study("NCT09999999")
    assert err.value.status == 404
    assert "HTTP 404" in str(err.value) and "/api/v2/studies/NCT09999999" in str(err.value)
    assert client.stats.requests == 1 and clock.sleeps == []


def test_get_studies_batches_with_filter_ids(httpserver, clock, load_response):
    records = {
        n: load_response(f"get_{n.lower()}") for n in ("NCT02576665", "NCT06382129", "NCT06604689")
    }

    def handler(request: Request) -> Response:
        wanted = request.args["filter.ids"].split(",")
        page = {"studies": [records[n] for n in wanted if n in records]}
        page["totalCount"] = len(page["studies"])
        return Response(json.dumps(page), content_type="application/json")

    httpserver.expect_request("/api/v2/studies").respond_with_handler(handler)
    asked = ["NCT06604689", "NCT02576665", "NCT06382129", "NCT00000001", "NCT06604689"]
    with make_client(httpserver, clock) as client:
        result = client.get_studies(asked, batch_size=2)
    batches = sent(httpserver)
    assert [b["filter.ids"] for b in batches] == [
        "NCT06604689,NCT02576665",
        "NCT06382129,NCT00000001",
    ]
    assert [b["pageSize"] for b in batches] == ["2", "2"]
    assert [study_nct_id(s) for s in result.studies] == asked[:3]
    assert result.missing_ids == ["NCT00000001"]


def test_data_timestamp(httpserver, clock):
    httpserver.expect_request("/api/v2/version").respond_with_json(
        {"apiVersion": "2.0.5", "dataTimestamp": "2026-08-11T09:00:05"}
    )
    with make_client(httpserver, clock) as client:
        assert client.data_timestamp() == "2026-08-11T09:00:05"


# --------------------------------------------------------------------------- injected faults


def test_429_then_success_honours_retry_after(httpserver, clock, load_response):
    terminal = load_response("search_phelan_limit50")
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(terminal)
    with make_client(httpserver, clock, min_interval_seconds=1.0) as client:
        result = client.search_studies(PHELAN)
    # the 7 s Retry-After replaces the backoff and already covers the 1 s request interval
    assert clock.sleeps == [7.0]
    assert result.nct_ids == ids(terminal)
    assert client.stats.retries == 1 and client.stats.requests == 2
    assert client.stats.statuses == {429: 1, 200: 1}
    sent_params = sent(httpserver)
    assert sent_params[0] == sent_params[1]  # the retry repeats the request exactly


def test_retry_after_is_capped(httpserver, clock, load_response):
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_data(
        "", status=429, headers={"Retry-After": "3600"}
    )
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(
        load_response("search_phelan_limit50")
    )
    with make_client(httpserver, clock, max_retry_after_seconds=30.0) as client:
        client.search_studies(PHELAN)
    assert clock.sleeps == [30.0]


def test_burst_of_503_backs_off_with_full_jitter(httpserver, clock, load_response):
    terminal = load_response("search_phelan_limit50")
    for _ in range(3):
        httpserver.expect_ordered_request("/api/v2/studies").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(terminal)
    with make_client(httpserver, clock, rng=random.Random(42)) as client:
        result = client.search_studies(PHELAN)
    assert clock.sleeps == expected_backoff(42, 3)
    assert all(0 <= s <= 2**i for i, s in enumerate(clock.sleeps))
    assert result.nct_ids == ids(terminal)
    assert client.stats.retries == 3 and client.stats.requests == 4
    assert client.stats.backoff_seconds == pytest.approx(sum(clock.sleeps))


def test_timeout_is_retried(httpserver, clock, load_response):
    terminal = load_response("search_phelan_limit50")
    slow_done = threading.Event()

    def slow(request: Request) -> Response:
        time.sleep(0.6)  # longer than the client's 0.2 s timeout
        slow_done.set()
        return Response(json.dumps(terminal), content_type="application/json")

    httpserver.expect_ordered_request("/api/v2/studies").respond_with_handler(slow)
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(terminal)
    with make_client(httpserver, clock, timeout=0.2) as client:
        result = client.search_studies(PHELAN)
    assert slow_done.wait(5)  # let the slow handler finish before the next test's server log
    assert result.nct_ids == ids(terminal)
    assert client.stats.transport_errors == 1 and client.stats.retries == 1
    assert clock.sleeps == expected_backoff(7, 1)


def test_truncated_body_raises_naming_the_request(httpserver, clock, load_response):
    body = json.dumps(load_response("search_phelan_limit5"))
    httpserver.expect_request("/api/v2/studies").respond_with_data(
        body[: len(body) // 2], content_type="application/json"
    )
    with make_client(httpserver, clock) as client, pytest.raises(RegistryError) as err:
        client.search_studies(PHELAN)
    message = str(err.value)
    assert "not valid JSON" in message
    assert message.startswith("GET /api/v2/studies?query.cond=Phelan-McDermid+Syndrome&fields=")
    assert "countTotal=true" in message
    assert client.stats.requests == 1  # a broken body is not retried, and never half-used


def test_html_error_page_with_200_raises(httpserver, clock):
    httpserver.expect_request("/api/v2/studies").respond_with_data(
        "<html><body><h1>Scheduled maintenance</h1></body></html>",
        status=200,
        content_type="text/html; charset=utf-8",
    )
    with make_client(httpserver, clock) as client, pytest.raises(RegistryError) as err:
        client.search_studies(PHELAN)
    assert "text/html" in str(err.value) and "Scheduled maintenance" in str(err.value)
    assert err.value.status == 200


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ({"studies": {"NCT02710084": {}}}, "'studies' must be a list, got dict"),
        ({"totalCount": 3}, "no 'studies' key"),
        ([{"protocolSection": {}}], "expected a JSON object"),
        ({"studies": [{"protocolSection": {}}]}, "has no protocolSection"),
        ({"studies": [], "nextPageToken": 12}, "nextPageToken must be a string"),
    ],
)
def test_unreadable_shapes_raise(httpserver, clock, payload, problem):
    httpserver.expect_request("/api/v2/studies").respond_with_json(payload)
    with make_client(httpserver, clock) as client, pytest.raises(RegistryError) as err:
        client.search_studies(PHELAN)
    assert problem in str(err.value)
    assert "GET /api/v2/studies?" in str(err.value)


def test_persistent_503_exhausts_retries(httpserver, clock):
    httpserver.expect_request("/api/v2/studies").respond_with_data("busy", status=503)
    with (
        make_client(httpserver, clock, max_retries=3) as client,
        pytest.raises(RegistryError) as err,
    ):
        client.search_studies(PHELAN, page_size=5)
    message = str(err.value)
    assert "HTTP 503" in message and "gave up after 4 attempt(s)" in message
    assert message.startswith("GET /api/v2/studies?query.cond=Phelan-McDermid+Syndrome")
    assert "pageSize=5" in message
    assert err.value.status == 503
    assert client.stats.requests == 4 and client.stats.retries == 3
    assert clock.sleeps == expected_backoff(7, 3)


def test_retries_stop_at_the_time_budget(httpserver, clock):
    httpserver.expect_request("/api/v2/studies").respond_with_data("busy", status=502)
    with (
        make_client(
            httpserver,
            clock,
            max_retries=50,
            max_retry_seconds=10.0,
            backoff_base_seconds=4.0,
            rng=random.Random(3),
        ) as client,
        pytest.raises(RegistryError, match="max_retry_seconds=10.0"),
    ):
        client.search_studies(PHELAN)
    assert sum(clock.sleeps) <= 10.0
    assert client.stats.retries < 50


def test_connection_errors_are_retried_then_reported(clock):
    # nothing listens on port 1 of the loopback interface: connection refused, no real network
    client = RegistryClient(
        "http://127.0.0.1:1/api/v2",
        max_retries=2,
        min_interval_seconds=0,
        sleep=clock.sleep,
        clock=clock,
        rng=random.Random(7),
    )
    with client, pytest.raises(RegistryError, match="connection failed") as err:
        client.data_timestamp()
    assert str(err.value).startswith("GET /api/v2/version: ")
    assert client.stats.requests == 3 and client.stats.transport_errors == 3
    assert clock.sleeps == expected_backoff(7, 2)


def test_client_errors_are_not_retried(httpserver, clock):
    httpserver.expect_request("/api/v2/studies").respond_with_data(
        '{"message": "unknown parameter filter.phase"}', status=400
    )
    with make_client(httpserver, clock) as client, pytest.raises(RegistryError) as err:
        client.search_studies({"filter.phase": "PHASE3"})
    assert err.value.status == 400 and "filter.phase" in str(err.value)
    assert client.stats.requests == 1 and clock.sleeps == []


def test_about_one_request_per_second(httpserver, clock, load_response):
    for stem in ("search_phelan_limit5", "search_phelan_next", "search_phelan_limit50"):
        httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(load_response(stem))
    with make_client(httpserver, clock, min_interval_seconds=1.0) as client:
        client.search_studies(PHELAN, page_size=5)
    # the fake clock only moves when the client sleeps: each later request waits a full second
    assert clock.sleeps == [1.0, 1.0]
    assert client.stats.throttle_seconds == 2.0


# --------------------------------------------------------------------------- incremental fetch


def test_second_run_only_asks_for_records_updated_since_the_stored_timestamp(
    httpserver, clock, load_response
):
    httpserver.expect_request("/api/v2/version").respond_with_json(
        {"apiVersion": "2.0.5", "dataTimestamp": "2026-08-11T09:00:05"}
    )
    httpserver.expect_request("/api/v2/studies").respond_with_json(
        load_response("search_nsclc_egfr_l858r")
    )
    base = {"query.cond": "lung cancer", "filter.advanced": "AREA[StudyType]INTERVENTIONAL"}
    with make_client(httpserver, clock) as client:
        first = incremental_search(client, base)
        stored = first.data_timestamp  # what the pipeline would persist between runs
        second = incremental_search(client, base, previous_timestamp=stored)

    paths = [request.path for request, _ in httpserver.log]
    assert paths == ["/api/v2/version", "/api/v2/studies"] * 2  # version read before searching
    run1, run2 = sent(httpserver)
    assert run1["filter.advanced"] == "AREA[StudyType]INTERVENTIONAL"
    assert run2["filter.advanced"] == (
        "AREA[StudyType]INTERVENTIONAL AND AREA[LastUpdatePostDate]RANGE[2026-08-11,MAX]"
    )
    assert {k: v for k, v in run2.items() if k != "filter.advanced"} == {
        k: v for k, v in run1.items() if k != "filter.advanced"
    }
    assert first.since is None and second.since == "2026-08-11T09:00:05"


def test_essie_helpers():
    assert updated_since_filter("2026-08-11T09:00:05") == (
        "AREA[LastUpdatePostDate]RANGE[2026-08-11,MAX]"
    )
    assert updated_since_filter(date(2025, 1, 2)) == "AREA[LastUpdatePostDate]RANGE[2025-01-02,MAX]"
    with pytest.raises(ValueError):
        updated_since_filter("yesterday")
    assert combine_advanced(None, " ", "AREA[Phase]PHASE2") == "AREA[Phase]PHASE2"
    assert combine_advanced("AREA[Phase]PHASE2 OR AREA[Phase]PHASE3", "AREA[StudyType]X") == (
        "(AREA[Phase]PHASE2 OR AREA[Phase]PHASE3) AND AREA[StudyType]X"
    )
    assert combine_advanced() is None
    assert with_advanced({"query.cond": "x"}, "AREA[Phase]NA") == {
        "query.cond": "x",
        "filter.advanced": "AREA[Phase]NA",
    }
    assert [normalise_phase(p) for p in ("Phase 3", "phase2", "III", "Early Phase 1", "N/A")] == [
        "PHASE3",
        "PHASE2",
        "PHASE3",
        "EARLY_PHASE1",
        "NA",
    ]
    with pytest.raises(ValueError):
        normalise_phase("PHASE5")


# --------------------------------------------------------------------------- peer cohort


def test_peer_cohort_params():
    params = peer_cohort_params(
        "Erectile Dysfunction", "Phase 3", start_within_years=5, today=date(2026, 8, 11)
    )
    assert params == {
        "query.cond": "Erectile Dysfunction",
        "filter.overallStatus": "COMPLETED",
        "filter.advanced": "AREA[StudyType]INTERVENTIONAL AND AREA[LeadSponsorClass]INDUSTRY "
        "AND AREA[Phase]PHASE3 AND AREA[StartDate]RANGE[2021-01-01,MAX]",
    }


def test_peer_cohort_stops_paging_at_the_cap(httpserver, clock, load_response):
    page1 = load_response("search_phelan_limit5")
    page2 = load_response("search_phelan_next")
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(page1)
    httpserver.expect_ordered_request("/api/v2/studies").respond_with_json(page2)
    today = date(2026, 8, 11)
    with make_client(httpserver, clock) as client:
        result = search_peer_cohort(
            client, "Phelan-McDermid Syndrome", "PHASE3", max_studies=7, today=today
        )
    first, second = sent(httpserver)  # page 2 still had a token: no third request
    assert first == {
        **peer_cohort_params("Phelan-McDermid Syndrome", "PHASE3", today=today),
        "fields": FIELDS_PARAM,
        "pageSize": "7",
        "countTotal": "true",
    }
    assert second["pageToken"] == page1["nextPageToken"]
    assert result.nct_ids == (ids(page1) + ids(page2))[:7]
    assert result.capped and result.count_mismatch is None


# --------------------------------------------------------------------------- offline replay


@pytest.fixture
def no_http(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("offline replay must not make HTTP requests")

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)


@pytest.fixture
def replay_dir(tmp_path: Path, export_records, load_response) -> Path:
    records = export_records["urology_635.json.zip"] + export_records["nsclc_100.json"]
    pages = [load_response("search_phelan_limit5"), load_response("search_phelan_next")]
    written = write_replay_dir(
        records,
        tmp_path / "replay",
        "2024-09-24T10:00:00",
        searches={"phelan": (PHELAN, pages)},
    )
    assert written == len(records)
    return tmp_path / "replay"


def test_replay_answers_get_and_search_without_http(no_http, replay_dir, export_records):
    source = ReplaySource(replay_dir)
    assert source.data_timestamp() == "2024-09-24T10:00:00"

    wanted = export_records["nsclc_100.json"][3]
    nct_id = study_nct_id(wanted)
    assert source.get_study(nct_id) == wanted
    fetched = source.get_studies([nct_id, "NCT00000001"])
    assert fetched.studies == [wanted] and fetched.missing_ids == ["NCT00000001"]
    with pytest.raises(RegistryError) as err:
        source.get_study("NCT00000001")
    assert err.value.status == 404

    # a recorded search: the recorded pages, followed through their tokens
    result = source.search_studies(PHELAN, page_size=5)
    assert len(result.studies) == 10 and result.total_count == 21
    assert result.count_mismatch is not None  # the recording stops after page 2

    # any other search is evaluated against the study records
    result = source.search_studies(
        {"filter.overallStatus": "WITHDRAWN", "filter.advanced": "AREA[StudyType]INTERVENTIONAL"},
        page_size=3,
    )
    expected = sorted(
        study_nct_id(r)
        for r in export_records["urology_635.json.zip"] + export_records["nsclc_100.json"]
        if r["protocolSection"]["statusModule"]["overallStatus"] == "WITHDRAWN"
        and r["protocolSection"]["designModule"]["studyType"] == "INTERVENTIONAL"
    )
    assert expected and result.nct_ids == expected
    assert result.total_count == len(expected) and result.pages > 1
    assert source.stats.requests == 0


def test_replay_peer_cohort_filters_the_records(no_http, replay_dir, export_records):
    source = ReplaySource(replay_dir)
    today = date(2024, 9, 24)
    result = search_peer_cohort(
        source,
        "Erectile Dysfunction",
        "PHASE3",
        start_within_years=20,
        max_studies=500,
        today=today,
    )
    records = export_records["urology_635.json.zip"] + export_records["nsclc_100.json"]

    def structured(record: dict[str, Any]) -> bool:
        ps = record["protocolSection"]
        start = ps["statusModule"].get("startDateStruct", {}).get("date", "")
        return (
            ps["statusModule"]["overallStatus"] == "COMPLETED"
            and ps["designModule"].get("studyType") == "INTERVENTIONAL"
            and ps["sponsorCollaboratorsModule"]["leadSponsor"].get("class") == "INDUSTRY"
            and "PHASE3" in ps["designModule"].get("phases", [])
            and start[:4] >= "2004"
        )

    exact_phrase = {
        study_nct_id(r)
        for r in records
        if structured(r)
        and any(
            c.lower() == "erectile dysfunction"
            for c in r["protocolSection"]["conditionsModule"].get("conditions", [])
        )
    }
    got = set(result.nct_ids)
    assert len(exact_phrase) >= 5  # the fixture data really holds such a cohort
    assert exact_phrase <= got  # every study reporting the condition verbatim is found
    for record in records:
        if study_nct_id(record) in got:
            assert structured(record)
            text = json.dumps(record["protocolSection"].get("conditionsModule", {})).lower()
            text += json.dumps(record.get("derivedSection", {})).lower()
            assert "erectile" in text and "dysfunction" in text

    capped = search_peer_cohort(
        source, "Erectile Dysfunction", "PHASE3", start_within_years=20, max_studies=3, today=today
    )
    assert capped.nct_ids == result.nct_ids[:3] and capped.capped


def test_replay_incremental_run_returns_only_updates(no_http, replay_dir, export_records):
    source = ReplaySource(replay_dir)
    run = incremental_search(
        source, {"query.cond": "NSCLC"}, previous_timestamp="2025-12-01T08:00:00"
    )
    expected = sorted(
        study_nct_id(r)
        for r in export_records["nsclc_100.json"]
        if r["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] >= "2025-12-01"
        and "NSCLC" in r["protocolSection"]["conditionsModule"]["conditions"]
    )
    assert expected
    assert set(expected) <= set(run.result.nct_ids)
    for study in run.result.studies:
        assert study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] >= (
            "2025-12-01"
        )
    assert run.data_timestamp == "2024-09-24T10:00:00"


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"query.locn": "Boston"}, "cannot answer parameter 'query.locn'"),
        ({"filter.advanced": "AREA[EnrollmentCount]RANGE[10,MAX]"}, "does not know AREA"),
        ({"filter.advanced": "AREA[Phase]PHASE2 OR AREA[Phase]PHASE3"}, "joined by AND"),
    ],
)
def test_replay_refuses_what_it_cannot_answer(no_http, replay_dir, params, problem):
    with pytest.raises(RegistryError, match=problem):
        ReplaySource(replay_dir).search_studies(params)


def test_replay_answers_essie_text_operators(no_http, replay_dir):
    """Condition text is what the API accepts (AND, OR, NOT, parentheses): answered, not
    refused (tests/registry/test_faults.py covers the cases in detail)."""
    source = ReplaySource(replay_dir)
    both = source.search_studies({"query.cond": "cancer AND lung"}).nct_ids
    assert both == source.search_studies({"query.cond": "(cancer) lung"}).nct_ids
    assert set(both) <= set(source.search_studies({"query.cond": "lung"}).nct_ids)


def test_the_whole_fetch_stops_at_the_registry_budget(httpserver, clock):
    # Each request alone would retry for up to 300 s; the budget bounds every request together.
    httpserver.expect_request("/api/v2/version").respond_with_data("busy", status=503)
    with make_client(
        httpserver, clock, max_retries=50, max_retry_seconds=300.0, budget_seconds=30.0
    ) as client:
        with pytest.raises(RegistryError) as err:
            client.data_timestamp()
        message = str(err.value)
        assert message.startswith("GET /api/v2/version: HTTP 503")
        assert "registry time budget (budget_seconds=30.0)" in message
        assert sum(clock.sleeps) <= 30.0
        sent_before = client.stats.requests
        clock.now += 30.0  # the budget is spent: the next call does not even send
        with pytest.raises(RegistryError, match=r"budget_seconds=30.0\) is spent"):
            client.search_studies(PHELAN)
        assert client.stats.requests == sent_before


def test_a_hanging_registry_fails_within_the_budget(httpserver):
    released = threading.Event()

    def hang(request: Request) -> Response:
        released.wait(10)
        return Response("{}", content_type="application/json")

    httpserver.expect_request("/api/v2/version").respond_with_handler(hang)
    started = time.monotonic()
    client = RegistryClient(
        httpserver.url_for("/api/v2"), timeout=30.0, budget_seconds=1.0, min_interval_seconds=0
    )
    try:
        with client, pytest.raises(RegistryError, match="budget") as err:
            client.data_timestamp()
    finally:
        released.set()
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, f"took {elapsed:.1f}s against a 1 s budget and a 30 s timeout"
    assert str(err.value).startswith("GET /api/v2/version: ")
