"""Gate outcomes as data: asset check results become rows of ops.gate_results."""

from collections.abc import Iterable

import dagster as dg


def check_result_rows(
    gate: str, run_id: str, results: Iterable[dg.AssetCheckResult], observed: str | None = None
) -> list[dict]:
    """One ops.gate_results row per check result; `observed` names the metadata entry to use
    as the observed value, the rest of the metadata goes into details."""
    rows = []
    for result in results:
        metadata = {
            key: getattr(value, "value", value) for key, value in (result.metadata or {}).items()
        }
        rows.append(
            {
                "run_id": run_id,
                "gate": gate,
                "target": result.asset_key.to_user_string(),
                "check_name": result.check_name,
                "success": result.passed,
                "observed_value": metadata.pop(observed, None) if observed else None,
                "details": {"severity": result.severity.value, **metadata},
            }
        )
    return rows
