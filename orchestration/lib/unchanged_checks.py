"""A quiet week's check results: the last outcome of each check, re-reported as this run's.

When nothing the dbt build reads has changed, the build is skipped and so is everything
downstream (publish gate, publish, report). Left alone, every check of those steps ends the run
as SKIPPED, the UI shows each mart's checks as "0 / N passed" and Dagster warns that blocking
checks emitted no result. The checks' outcome is known, though: the marts are the same bytes the
last build checked. So each check reports that outcome again as this run's evaluation (same
passed and severity, its metadata plus `unchanged_since_run`): the dbt step yields its own
checks, and logs the evaluations of the downstream checks its skip leaves without a run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping

import dagster as dg
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecord,
    AssetCheckExecutionRecordStatus,
)

#: Metadata key naming the run whose check evaluation this one repeats.
UNCHANGED_SINCE = "unchanged_since_run"


class _ReportedChecksFilter(logging.Filter):
    """Dagster's executor warns "Blocking asset check ... emitted no result ... will proceed
    without gating" for a check step skipped with the build, although the step downstream of it
    is then skipped too, and the check's outcome was reported: that warning is dropped for the
    checks this process re-reported in its current build step, and for no other."""

    PATTERN = re.compile(r"^Blocking asset check '([^']+)' emitted no result")

    def __init__(self) -> None:
        super().__init__()
        self.reported: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        match = self.PATTERN.match(record.getMessage())
        return not (match and match.group(1) in self.reported)


REPORTED = _ReportedChecksFilter()
logging.getLogger("dagster._core.execution.plan.active").addFilter(REPORTED)

_EVALUATED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


def _last_evaluation(
    instance: dg.DagsterInstance, key: dg.AssetCheckKey
) -> tuple[str, dg.AssetCheckEvaluation] | None:
    records: list[AssetCheckExecutionRecord] = list(
        instance.event_log_storage.get_asset_check_execution_history(
            key, limit=1, status=_EVALUATED
        )
    )
    if not records or records[0].event is None or records[0].event.dagster_event is None:
        return None
    evaluation = records[0].event.dagster_event.event_specific_data
    if not isinstance(evaluation, dg.AssetCheckEvaluation):
        return None
    return records[0].run_id, evaluation


def _repeated(key: dg.AssetCheckKey, run_id: str, last: dg.AssetCheckEvaluation) -> dict:
    metadata = dict(last.metadata)
    since = metadata.get(UNCHANGED_SINCE)
    metadata[UNCHANGED_SINCE] = since if since is not None else dg.MetadataValue.text(run_id)
    return {
        "asset_key": key.asset_key,
        "check_name": key.name,
        "passed": last.passed,
        "severity": last.severity,
        "description": last.description,
        "metadata": metadata,
    }


def unchanged_results(
    context: dg.AssetExecutionContext,
    previous_run_id: str,
    gate_outcomes: Mapping[str, tuple[bool, str | None]],
) -> Iterator[dg.AssetCheckResult]:
    """This step's checks with their last outcome. A check the Dagster instance has no outcome
    for (the warehouse was built under another Dagster home) takes it from the warehouse gate's
    record of the last build (`gate_outcomes`: dbt test name -> (passed, severity))."""
    for key in sorted(context.selected_asset_check_keys, key=str):
        last = _last_evaluation(context.instance, key)
        if last is not None:
            yield dg.AssetCheckResult(**_repeated(key, *last))
        elif key.name in gate_outcomes:
            passed, severity = gate_outcomes[key.name]
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=passed,
                severity=dg.AssetCheckSeverity.WARN
                if (severity or "").lower() == "warn"
                else dg.AssetCheckSeverity.ERROR,
                metadata={UNCHANGED_SINCE: dg.MetadataValue.text(previous_run_id)},
            )


def pending_downstream_checks(context: dg.AssetExecutionContext) -> list[dg.AssetCheckKey]:
    """Checks of this run that belong to other steps and have not run yet: with the build
    skipped, those steps are skipped too."""
    own = set(context.selected_asset_check_keys)
    keys = [k for k in context.job_def.asset_layer.asset_graph.asset_check_keys if k not in own]
    latest = context.instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    return sorted(
        (
            key
            for key, record in latest.items()
            if record.run_id == context.run_id
            and record.status == AssetCheckExecutionRecordStatus.PLANNED
        ),
        key=str,
    )


def log_unchanged_downstream(
    context: dg.AssetExecutionContext, keys: Iterable[dg.AssetCheckKey]
) -> int:
    """Log each downstream check's last outcome as this run's evaluation; returns how many."""
    REPORTED.reported.clear()
    logged = 0
    for key in keys:
        last = _last_evaluation(context.instance, key)
        if last is None:
            continue
        context.log_event(dg.AssetCheckEvaluation(**_repeated(key, *last)))
        REPORTED.reported.add(key.to_user_string())
        logged += 1
    return logged
