"""Everything that starts a run: the jobs, the weekly schedule, the inbox sensor, and the alert
when a run fails.

Environment variables are read when Dagster loads the definitions or evaluates a tick, never at
import, so a changed `.env` takes effect on the next load.
"""

import hashlib
import json
import urllib.request

import dagster as dg

from core.settings import load_settings
from ingest.inbox_entries import scan_inbox
from orchestration.defs.smo_deliveries import smo_deliveries

oversight_refresh = dg.define_asset_job(
    name="oversight_refresh",
    selection=dg.AssetSelection.all(),
    description="Full oversight refresh: every asset and every check, in dependency order.",
)

delivery_refresh = dg.define_asset_job(
    name="delivery_refresh",
    selection=dg.AssetSelection.assets(smo_deliveries).downstream(),
    description="Ingest new SMO deliveries and rebuild everything downstream of them.",
)


@dg.sensor(
    job=delivery_refresh,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts delivery_refresh when ready entries (settled, not .part/.tmp) are in "
    "an SMO's inbox folder: deliveries, and entries the run must quarantine.",
)
def inbox_sensor(context: dg.SensorEvaluationContext):
    settings = load_settings()
    # lstat only: never follows a link, never opens an entry; names are escaped (not UTF-8 safe).
    scan = scan_inbox(settings.inbox_dir, settings.inbox_settle_seconds)
    files = sorted(entry.fingerprint for entries in scan.entries.values() for entry in entries)
    if not files:
        return dg.SkipReason(f"no ready files in {settings.inbox_dir}")
    # The run key is the set of files: the same waiting files never start a second run.
    run_key = hashlib.sha256("\n".join(files).encode()).hexdigest()[:32]
    return dg.RunRequest(run_key=run_key, tags={"inbox_files": str(len(files))})


def weekly_oversight_refresh() -> dg.ScheduleDefinition:
    """The weekly schedule, with its cron and time zone read from the environment now."""
    settings = load_settings()
    return dg.ScheduleDefinition(
        name="weekly_oversight_refresh",
        job=oversight_refresh,
        cron_schedule=settings.weekly_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="The weekly oversight refresh (SMO_WEEKLY_CRON, default Monday 06:00, in "
        "SMO_SCHEDULE_TIMEZONE, default UTC): ingest, registry, dbt, gates, publish.",
    )


def failure_message(context: dg.RunFailureSensorContext, ui_url: str) -> str:
    """A short, human message: which job, which steps, the first error, where to look."""
    run = context.dagster_run
    steps = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    error = context.failure_event.message or ""
    first_step_error = next(
        (_root_message(e.event_specific_data.error) for e in context.get_step_failure_events()
         if getattr(e.event_specific_data, "error", None) is not None),
        "",
    )  # fmt: skip
    lines = [
        f"smo-oversight: run of {run.job_name} failed",
        f"failed steps: {', '.join(steps) or 'none (the run failed outside a step)'}",
        f"first error: {(first_step_error or error)[:300]}",
        f"{ui_url}/runs/{run.run_id}",
    ]
    return "\n".join(lines)


def _root_message(error) -> str:
    """The user's own exception, not Dagster's wrapper around it."""
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return (error.message or "").strip().splitlines()[0] if error.message else ""


def post_webhook(url: str, text: str, timeout: float = 10.0) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run and posts a short message to SMO_ALERT_WEBHOOK_URL when "
    "it is set.",
)
def run_failure_alert(context: dg.RunFailureSensorContext):
    settings = load_settings()
    message = failure_message(context, settings.dagster_ui_url)
    context.log.error(message)
    if not settings.alert_webhook_url:
        return
    try:
        status = post_webhook(settings.alert_webhook_url, message)
        context.log.info(f"alert posted to the webhook (HTTP {status})")
    except OSError as exc:  # an unreachable webhook must not hide the failure it reports
        context.log.error(f"could not post the alert to the webhook: {exc}")


@dg.definitions
def automation() -> dg.Definitions:
    return dg.Definitions(
        jobs=[oversight_refresh, delivery_refresh],
        schedules=[weekly_oversight_refresh()],
        sensors=[inbox_sensor, run_failure_alert],
    )
