"""A run waiting for a pool slot sleeps until its next claim check instead of spinning a core.

Dagster 1.13's `InstanceConcurrencyContext.interval_to_next_pending_claim_check` returns
`min(0, seconds until the next check)`, which is never above 0, so the executor's
`sleep_til_ready` never sleeps and a run queued behind another on the `duckdb_writer` pool
re-enters its claim loop without pause. Measured: a refresh waiting behind a held slot used 1.9 s
of CPU per 10 s, taken from the run it waits for on a 2-core machine; 0.0 s with the interval
below. Dagster's own fix attempt (dagster-io/dagster#20367) was closed unmerged. The interval is corrected here:
the time until the earliest pending claim may be retried, never negative. Claims, timeouts and
their backoff are Dagster's, unchanged.
"""

from __future__ import annotations

import time

from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext


def interval_to_next_pending_claim_check(self: InstanceConcurrencyContext) -> float:
    """Seconds until the earliest pending claim's retry time (0 when one is due or none wait)."""
    if not self.has_pending_claims():
        return 0.0
    now = time.time()
    return max(0.0, min((at - now for at in self._pending_timeouts.values()), default=0.0))


InstanceConcurrencyContext.interval_to_next_pending_claim_check = (  # type: ignore[method-assign]
    interval_to_next_pending_claim_check
)
