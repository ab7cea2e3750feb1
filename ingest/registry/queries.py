"""Essie query builders: incremental fetches and peer cohorts.

Both work with any `RegistrySource` (the live `RegistryClient` or the offline `ReplaySource`).
API v2 has no `filter.phase` parameter: phase, study type, sponsor class and date ranges go into
`filter.advanced` as ``AREA[...]`` expressions joined with `` AND ``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from ingest.registry.client import (
    MAX_PAGE_SIZE,
    STUDY_FIELDS,
    RegistrySource,
    SearchResult,
)

PHASES = ("EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA")

_PHASE_ALIASES = {
    "EARLYPHASE1": "EARLY_PHASE1",
    "PHASE0": "EARLY_PHASE1",
    "0": "EARLY_PHASE1",
    "1": "PHASE1",
    "2": "PHASE2",
    "3": "PHASE3",
    "4": "PHASE4",
    "I": "PHASE1",
    "II": "PHASE2",
    "III": "PHASE3",
    "IV": "PHASE4",
    "PHASEI": "PHASE1",
    "PHASEII": "PHASE2",
    "PHASEIII": "PHASE3",
    "PHASEIV": "PHASE4",
    "NA": "NA",
    "N/A": "NA",
    "NOTAPPLICABLE": "NA",
}


def normalise_phase(phase: str) -> str:
    """``"Phase 3"``, ``"phase3"``, ``"3"``, ``"III"`` -> ``"PHASE3"`` (API v2 enumeration)."""
    key = re.sub(r"[\s_\-]", "", str(phase).upper())
    if key in PHASES:
        return key
    if key in _PHASE_ALIASES:
        return _PHASE_ALIASES[key]
    raise ValueError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")


def combine_advanced(*expressions: str | None) -> str | None:
    """Join Essie expressions with `` AND ``; one containing OR is parenthesised first."""
    parts = []
    for expr in expressions:
        expr = (expr or "").strip()
        if not expr:
            continue
        if " OR " in expr and not (expr.startswith("(") and expr.endswith(")")):
            expr = f"({expr})"
        parts.append(expr)
    return " AND ".join(parts) if parts else None


def with_advanced(params: Mapping[str, str], *expressions: str | None) -> dict[str, str]:
    """A copy of `params` whose `filter.advanced` also requires every expression."""
    out = dict(params)
    combined = combine_advanced(out.get("filter.advanced"), *expressions)
    if combined:
        out["filter.advanced"] = combined
    return out


def timestamp_date(data_timestamp: str | date | datetime) -> date:
    """The date part of a `dataTimestamp` (``2026-08-11T09:00:05`` -> 2026-08-11)."""
    if isinstance(data_timestamp, datetime):
        return data_timestamp.date()
    if isinstance(data_timestamp, date):
        return data_timestamp
    text = str(data_timestamp).strip()
    try:
        return date.fromisoformat(text[:10])
    except ValueError as exc:
        raise ValueError(f"not a data timestamp (YYYY-MM-DD...): {data_timestamp!r}") from exc


def updated_since_filter(data_timestamp: str | date | datetime) -> str:
    """``AREA[LastUpdatePostDate]RANGE[<date>,MAX]`` for records updated since a data version.

    The range includes the day of the previous timestamp, so records posted later that same day
    are fetched again rather than missed (re-fetches are harmless: loads dedupe by nctId).
    """
    return f"AREA[LastUpdatePostDate]RANGE[{timestamp_date(data_timestamp).isoformat()},MAX]"


def incremental_params(
    params: Mapping[str, str], previous_timestamp: str | date | datetime | None
) -> dict[str, str]:
    """`params` restricted to records updated since `previous_timestamp` (unchanged if None)."""
    if previous_timestamp is None:
        return dict(params)
    return with_advanced(params, updated_since_filter(previous_timestamp))


@dataclass(frozen=True)
class IncrementalResult:
    result: SearchResult
    #: the registry's data version read before searching: store it and pass it as
    #: `previous_timestamp` next run
    data_timestamp: str
    since: str | None  # the previous timestamp this run filtered on (None = full fetch)


def incremental_search(
    source: RegistrySource,
    params: Mapping[str, str],
    previous_timestamp: str | None = None,
    fields: Sequence[str] = STUDY_FIELDS,
    page_size: int = MAX_PAGE_SIZE,
) -> IncrementalResult:
    """One incremental run: read the data version first, then fetch what changed since the last.

    The version is read before the search so that an update landing during a long search is
    fetched again next time instead of being skipped.
    """
    stamp = source.data_timestamp()
    result = source.search_studies(
        incremental_params(params, previous_timestamp), fields, page_size
    )
    return IncrementalResult(result=result, data_timestamp=stamp, since=previous_timestamp)


def peer_cohort_params(
    condition: str,
    phase: str,
    *,
    start_within_years: int = 5,
    today: date | None = None,
) -> dict[str, str]:
    """Completed, interventional, industry-led studies of `condition` in `phase`.

    Started on or after 1 January of (this year - `start_within_years`).
    """
    condition = (condition or "").strip()
    if not condition:
        raise ValueError("condition must not be empty")
    if start_within_years < 0:
        raise ValueError("start_within_years must be >= 0")
    start_year = (today or date.today()).year - start_within_years
    advanced = combine_advanced(
        "AREA[StudyType]INTERVENTIONAL",
        "AREA[LeadSponsorClass]INDUSTRY",
        f"AREA[Phase]{normalise_phase(phase)}",
        f"AREA[StartDate]RANGE[{start_year:04d}-01-01,MAX]",
    )
    assert advanced is not None
    return {
        "query.cond": condition,
        "filter.overallStatus": "COMPLETED",
        "filter.advanced": advanced,
    }


def search_peer_cohort(
    source: RegistrySource,
    condition: str,
    phase: str,
    *,
    start_within_years: int = 5,
    max_studies: int = 200,
    today: date | None = None,
    fields: Sequence[str] = STUDY_FIELDS,
) -> SearchResult:
    """Peer cohort search; pagination stops once `max_studies` unique studies are in hand."""
    params = peer_cohort_params(
        condition, phase, start_within_years=start_within_years, today=today
    )
    return source.search_studies(params, fields, MAX_PAGE_SIZE, max_studies)
