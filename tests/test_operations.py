"""The weekly schedule and the run-failure alert, evaluated with Dagster's test utilities."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from orchestration.defs import automation
from tests.conftest import project_instance


def test_weekly_refresh_defaults_to_monday_0600_utc_and_runs_the_whole_graph():
    schedule = automation.weekly_oversight_refresh()
    assert schedule.cron_schedule == "0 6 * * 1"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    monday = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)
    with dg.build_schedule_context(scheduled_execution_time=monday) as context:
        data = schedule.evaluate_tick(context)
    (request,) = data.run_requests
    assert schedule.job_name == "oversight_refresh" and request.run_config == {}


def test_schedule_time_and_zone_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SMO_WEEKLY_CRON", "30 5 * * 1")
    monkeypatch.setenv("SMO_SCHEDULE_TIMEZONE", "Europe/Madrid")
    schedule = automation.weekly_oversight_refresh()
    assert schedule.cron_schedule == "30 5 * * 1"
    assert schedule.execution_timezone == "Europe/Madrid"


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Recorder.received = []
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Recorder.received
    server.shutdown()


@dg.op
def load_warehouse():
    raise RuntimeError("IO Error: Could not set lock on file warehouse.duckdb")


@dg.job
def failing_job():
    load_warehouse()


def _failure_context(instance: dg.DagsterInstance):
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert",
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=result.get_run_failure_event(),
    ).for_run_failure()


def test_a_failed_run_is_posted_to_the_webhook(webhook, monkeypatch):
    url, received = webhook
    monkeypatch.setenv("SMO_ALERT_WEBHOOK_URL", url)
    monkeypatch.setenv("SMO_DAGSTER_UI_URL", "http://dagster.example:3000/")
    with project_instance() as instance:
        context = _failure_context(instance)
        automation.run_failure_alert(context)
        run_id = context.dagster_run.run_id
    (message,) = received
    text = message["text"]
    assert "run of failing_job failed" in text
    assert "failed steps: load_warehouse" in text
    assert "Could not set lock on file warehouse.duckdb" in text
    assert f"http://dagster.example:3000/runs/{run_id}" in text


def test_an_unreachable_webhook_does_not_hide_the_failure(monkeypatch):
    monkeypatch.setenv("SMO_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unreachable")
    with project_instance() as instance:
        automation.run_failure_alert(_failure_context(instance))  # logs, does not raise


def test_without_a_webhook_the_failure_is_only_logged(webhook, monkeypatch):
    _, received = webhook
    monkeypatch.delenv("SMO_ALERT_WEBHOOK_URL", raising=False)
    with project_instance() as instance:
        automation.run_failure_alert(_failure_context(instance))
    assert received == []
