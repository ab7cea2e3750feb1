"""HTTP client for the ClinicalTrials.gov API v2 (https://clinicaltrials.gov/api/v2).

Plain library code (no Dagster): a Dagster asset builds a `RegistryClient`, calls it, and reports
`client.stats` as metadata. Everything that waits goes through the injected `sleep` and `clock`, so
tests never really wait.

API facts this client relies on (see ../shared/data/README.md):

- `GET /studies` pages with `pageToken`; every later page repeats the first page's parameters
  (query, filters, `fields`, `pageSize`) plus `pageToken`. `countTotal=true` is sent on the first
  page only: the API adds `totalCount` to the first page and ignores the flag afterwards.
- `pageSize` is capped at 1,000; a page may be empty while still carrying a `nextPageToken` (after
  an exactly full last page), so an empty page ends the search.
- `GET /studies/{nctId}` returns one study record; `GET /studies?filter.ids=NCT1,NCT2` many.
- `GET /version` returns `dataTimestamp`, the registry's data version.
- No rate limit is documented but HTTP 429 happens at peak: about one request per second, with
  exponential backoff and full jitter on 429, 5xx, timeouts and connection errors.

Every failure surfaces as `RegistryError`, whose message names the request (method, URL path and
query parameters) and what was wrong; a search never returns a partial result.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://clinicaltrials.gov/api/v2"
MAX_PAGE_SIZE = 1000
USER_AGENT = "smo-oversight-registry-client/0.1 (+https://clinicaltrials.gov/data-api/api)"

#: The parts of a study record that `ingest.registry.flatten` reads; the default `fields`
#: projection of searches. Paths are the JSON paths of API v2 (a branch includes its leaves).
STUDY_FIELDS: tuple[str, ...] = (
    "protocolSection.identificationModule",
    "protocolSection.statusModule",
    "protocolSection.sponsorCollaboratorsModule",
    "protocolSection.conditionsModule",
    "protocolSection.designModule",
    "protocolSection.armsInterventionsModule.interventions",
    "protocolSection.contactsLocationsModule.locations",
    "derivedSection.conditionBrowseModule.meshes",
    "hasResults",
)

NCT_ID_FIELD = "protocolSection.identificationModule.nctId"

#: Parameters the pagination owns; callers must not pass them in `params`.
RESERVED_PARAMS = frozenset({"pageToken", "pageSize", "countTotal", "fields", "format"})

_NCT_ID_RE = re.compile(r"^NCT\d{8}$")


class RegistryError(Exception):
    """The registry (or a recorded copy of it) could not answer a request.

    `request` names the request (e.g. ``GET /api/v2/studies?query.cond=...``), `problem` says
    what was wrong, `status` is the HTTP status when there was one.
    """

    def __init__(self, problem: str, *, request: str | None = None, status: int | None = None):
        self.problem = problem
        self.request = request
        self.status = status
        super().__init__(f"{request}: {problem}" if request else problem)


def describe_request(method: str, path: str, params: Mapping[str, Any] | None = None) -> str:
    """``GET /api/v2/studies?query.cond=x&pageSize=5``: how errors name a request."""
    query = urlencode(list((params or {}).items()), safe=",[]:")
    return f"{method} {path}" + (f"?{query}" if query else "")


@dataclass
class RequestStats:
    """Counters for one client; `as_dict()` is ready to be Dagster metadata."""

    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0  # requests repeated after a retryable failure
    backoff_seconds: float = 0.0  # slept waiting to retry (backoff or Retry-After)
    throttle_seconds: float = 0.0  # slept keeping the minimum interval between requests
    statuses: dict[int, int] = field(default_factory=dict)  # responses received, by status
    transport_errors: int = 0  # timeouts and connection errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchResult:
    """All unique studies of one search, in the order the registry returned them."""

    studies: list[dict[str, Any]]
    #: the first page's query parameters exactly as sent (later pages add `pageToken` and drop
    #: `countTotal`)
    params: dict[str, str]
    total_count: int | None  # the first page's totalCount, when the registry sent one
    pages: int
    duplicates_dropped: int  # records whose nctId had already been seen
    capped: bool  # pagination stopped at `max_studies` although more studies were available
    #: why totalCount disagrees with the unique studies fetched (None when it agrees, when no
    #: totalCount was sent, or when the search was capped)
    count_mismatch: str | None

    @property
    def nct_ids(self) -> list[str]:
        return [study_nct_id(s) or "" for s in self.studies]


@dataclass(frozen=True)
class FetchResult:
    """Studies fetched by id: found records in the requested order, and the ids not found."""

    studies: list[dict[str, Any]]
    missing_ids: list[str]


class RegistrySource(Protocol):
    """What the live client and the offline replay (`ingest.registry.sources`) both answer."""

    stats: RequestStats

    def search_studies(
        self,
        params: Mapping[str, str],
        fields: Sequence[str] = STUDY_FIELDS,
        page_size: int = MAX_PAGE_SIZE,
        max_studies: int | None = None,
    ) -> SearchResult: ...

    def get_study(self, nct_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]: ...

    def get_studies(
        self,
        nct_ids: Iterable[str],
        fields: Sequence[str] = STUDY_FIELDS,
        batch_size: int = 100,
    ) -> FetchResult: ...

    def data_timestamp(self) -> str: ...


# --------------------------------------------------------------------------- record helpers


def study_nct_id(study: Any) -> str | None:
    """`protocolSection.identificationModule.nctId` of a record, or None."""
    if not isinstance(study, dict):
        return None
    section = study.get("protocolSection")
    ident = section.get("identificationModule") if isinstance(section, dict) else None
    nct_id = ident.get("nctId") if isinstance(ident, dict) else None
    return nct_id if isinstance(nct_id, str) and nct_id else None


def check_nct_id(nct_id: str) -> str:
    cleaned = nct_id.strip().upper() if isinstance(nct_id, str) else ""
    if not _NCT_ID_RE.match(cleaned):
        raise ValueError(f"not an NCT id (NCT + 8 digits): {nct_id!r}")
    return cleaned


def ensure_nct_id_field(fields: Sequence[str]) -> list[str]:
    """`fields` plus the nctId path unless a listed field already covers it (dedupe needs it)."""
    if isinstance(fields, str):
        raise TypeError("fields must be a sequence of field names, not one string")
    out = [f.strip() for f in fields if f and f.strip()]
    if not out:
        raise ValueError("fields must name at least one field (the API returns everything)")
    covered = any(
        f == NCT_ID_FIELD or NCT_ID_FIELD.startswith(f + ".") or f.lower() == "nctid" for f in out
    )
    if not covered:
        out.append(NCT_ID_FIELD)
    return out


def check_search_params(params: Mapping[str, Any]) -> dict[str, str]:
    reserved = sorted(RESERVED_PARAMS.intersection(params))
    if reserved:
        raise ValueError(f"pagination owns these parameters; do not pass them: {reserved}")
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[str(key)] = ",".join(value) if isinstance(value, list | tuple) else str(value)
    return out


@dataclass(frozen=True)
class _Page:
    studies: list[dict[str, Any]]
    next_token: str | None
    total_count: int | None


def parse_page(payload: Any, request: str) -> _Page:
    """Validate one `/studies` page; anything we cannot read raises `RegistryError`."""
    if not isinstance(payload, dict):
        raise RegistryError(
            f"expected a JSON object with 'studies', got {type(payload).__name__}",
            request=request,
        )
    studies = payload.get("studies")
    if not isinstance(studies, list):
        got = "no 'studies' key" if "studies" not in payload else type(studies).__name__
        raise RegistryError(f"'studies' must be a list, got {got}", request=request)
    for i, study in enumerate(studies):
        if not isinstance(study, dict):
            raise RegistryError(
                f"studies[{i}] is {type(study).__name__}, not an object", request=request
            )
        if study_nct_id(study) is None:
            raise RegistryError(f"studies[{i}] has no {NCT_ID_FIELD}", request=request)
    token = payload.get("nextPageToken")
    if token is not None and not isinstance(token, str):
        raise RegistryError(
            f"nextPageToken must be a string, got {type(token).__name__}", request=request
        )
    total = payload.get("totalCount")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise RegistryError(
            f"totalCount must be a non-negative integer: {total!r}", request=request
        )
    return _Page(studies=studies, next_token=token or None, total_count=total)


def paginate(
    fetch: Callable[[dict[str, str]], Any],
    describe: Callable[[dict[str, str]], str],
    params: Mapping[str, Any],
    fields: Sequence[str],
    page_size: int,
    max_studies: int | None,
) -> SearchResult:
    """Follow `nextPageToken` from the first page to the end (shared by client and replay).

    `fetch(query_params)` returns one page's decoded JSON; `describe(query_params)` names the
    request in errors.
    """
    base = check_search_params(params)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
    if max_studies is not None:
        if max_studies < 1:
            raise ValueError(f"max_studies must be positive, got {max_studies}")
        page_size = min(page_size, max_studies)
    first = {
        **base,
        "fields": ",".join(ensure_nct_id_field(fields)),
        "pageSize": str(page_size),
        "countTotal": "true",
    }
    later = {k: v for k, v in first.items() if k != "countTotal"}

    studies: list[dict[str, Any]] = []
    seen: set[str] = set()
    tokens: set[str] = set()
    duplicates = pages = 0
    total: int | None = None
    token: str | None = None
    capped = False
    while True:
        query = first if token is None else {**later, "pageToken": token}
        page = parse_page(fetch(query), describe(query))
        pages += 1
        if pages == 1:
            total = page.total_count
        for i, study in enumerate(page.studies):
            nct_id = study_nct_id(study)
            assert nct_id is not None  # parse_page checked
            if nct_id in seen:
                duplicates += 1
                continue
            seen.add(nct_id)
            studies.append(study)
            if max_studies is not None and len(studies) >= max_studies:
                capped = i + 1 < len(page.studies) or page.next_token is not None
                break
        if max_studies is not None and len(studies) >= max_studies:
            break
        if not page.studies or page.next_token is None:
            break
        if page.next_token in tokens:
            raise RegistryError(
                "nextPageToken repeats an earlier token (pagination would loop)",
                request=describe(query),
            )
        tokens.add(page.next_token)
        token = page.next_token

    mismatch = None
    if total is not None and not capped and total != len(studies):
        mismatch = (
            f"totalCount {total} on the first page but {len(studies)} unique studies fetched "
            f"over {pages} page(s) ({duplicates} duplicate record(s) dropped)"
        )
        log.warning("%s: %s", describe(first), mismatch)
    return SearchResult(
        studies=studies,
        params=first,
        total_count=total,
        pages=pages,
        duplicates_dropped=duplicates,
        capped=capped,
        count_mismatch=mismatch,
    )


def collect_by_ids(requested: Sequence[str], found: Iterable[dict[str, Any]]) -> FetchResult:
    """Order `found` like `requested` (matching nctId or nctIdAliases) and list what is missing."""
    by_id: dict[str, dict[str, Any]] = {}
    for study in found:
        nct_id = study_nct_id(study)
        if nct_id is None:
            continue
        by_id.setdefault(nct_id, study)
        ident = study["protocolSection"]["identificationModule"]
        aliases = ident.get("nctIdAliases")
        for alias in aliases if isinstance(aliases, list) else []:
            if isinstance(alias, str):
                by_id.setdefault(alias, study)
    studies: list[dict[str, Any]] = []
    missing: list[str] = []
    emitted: set[int] = set()
    for nct_id in requested:
        study = by_id.get(nct_id)
        if study is None:
            missing.append(nct_id)
        elif id(study) not in emitted:
            emitted.add(id(study))
            studies.append(study)
    return FetchResult(studies=studies, missing_ids=missing)


def unique_nct_ids(nct_ids: Iterable[str]) -> list[str]:
    if isinstance(nct_ids, str):
        nct_ids = [nct_ids]
    return list(dict.fromkeys(check_nct_id(n) for n in nct_ids))


# --------------------------------------------------------------------------- the client


class RegistryClient:
    """ClinicalTrials.gov API v2 over httpx: paging, retries with backoff, ~1 request/second.

    `sleep`, `clock` and `rng` are injectable so tests can record waits instead of waiting.
    Retries stop after `max_retries` retries or when the next wait would take the time spent on
    one request past `max_retry_seconds`, whichever comes first. A `Retry-After` header replaces
    the backoff for that wait, capped at `max_retry_after_seconds`. `budget_seconds` bounds the
    whole fetch (every request, retry and wait from the first request on): no request starts and
    no wait begins that would end past it, and each request's timeout is cut to what is left.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        max_retry_seconds: float = 300.0,
        min_interval_seconds: float = 1.0,
        backoff_base_seconds: float = 1.0,
        max_backoff_seconds: float = 60.0,
        max_retry_after_seconds: float = 120.0,
        budget_seconds: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        http_client: httpx.Client | None = None,
    ):
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._base_path = httpx.URL(self.base_url).path.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_seconds = max_retry_seconds
        self.min_interval_seconds = min_interval_seconds
        self.backoff_base_seconds = backoff_base_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_retry_after_seconds = max_retry_after_seconds
        self.budget_seconds = budget_seconds
        self._first_request_at: float | None = None
        self._sleep = sleep
        self._clock = clock
        self._rng = rng if rng is not None else random.Random(0x5EED)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        self._last_request_at: float | None = None
        self.stats = RequestStats()

    # -- lifecycle

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public calls

    def search_studies(
        self,
        params: Mapping[str, str],
        fields: Sequence[str] = STUDY_FIELDS,
        page_size: int = MAX_PAGE_SIZE,
        max_studies: int | None = None,
    ) -> SearchResult:
        """`GET /studies` over every page; see `paginate` for the paging rules."""
        return paginate(
            lambda query: self._get_json("/studies", query),
            lambda query: describe_request("GET", self._path("/studies"), query),
            params,
            fields,
            page_size,
            max_studies,
        )

    def get_study(self, nct_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """`GET /studies/{nctId}`: one study record."""
        nct_id = check_nct_id(nct_id)
        params = {"fields": ",".join(ensure_nct_id_field(fields))} if fields else {}
        path = f"/studies/{nct_id}"
        payload = self._get_json(path, params)
        request = describe_request("GET", self._path(path), params)
        if not isinstance(payload, dict):
            raise RegistryError(
                f"expected a study object, got {type(payload).__name__}", request=request
            )
        got = study_nct_id(payload)
        if got != nct_id:
            raise RegistryError(f"asked for {nct_id}, the record is {got!r}", request=request)
        return payload

    def get_studies(
        self,
        nct_ids: Iterable[str],
        fields: Sequence[str] = STUDY_FIELDS,
        batch_size: int = 100,
    ) -> FetchResult:
        """Many studies by id, `batch_size` ids per `GET /studies?filter.ids=...` search."""
        if not 1 <= batch_size <= MAX_PAGE_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_PAGE_SIZE}, got {batch_size}")
        wanted = unique_nct_ids(nct_ids)
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), batch_size):
            batch = wanted[start : start + batch_size]
            result = self.search_studies({"filter.ids": ",".join(batch)}, fields, len(batch))
            found.extend(result.studies)
        return collect_by_ids(wanted, found)

    def data_timestamp(self) -> str:
        """`GET /version` -> `dataTimestamp`, e.g. ``2026-08-11T09:00:05``."""
        payload = self._get_json("/version", {})
        stamp = payload.get("dataTimestamp") if isinstance(payload, dict) else None
        if not isinstance(stamp, str) or not stamp:
            raise RegistryError(
                f"no dataTimestamp string in {str(payload)[:120]!r}",
                request=describe_request("GET", self._path("/version")),
            )
        return stamp

    # -- transport

    def _path(self, path: str) -> str:
        return self._base_path + path

    def _throttle(self) -> None:
        if self._last_request_at is not None and self.min_interval_seconds > 0:
            wait = self.min_interval_seconds - (self._clock() - self._last_request_at)
            if wait > 0:
                self.stats.throttle_seconds += wait
                self._sleep(wait)
        self._last_request_at = self._clock()

    def _budget_left(self) -> float | None:
        if self.budget_seconds is None or self._first_request_at is None:
            return None
        return self.budget_seconds - (self._clock() - self._first_request_at)

    def _backoff(self, retry: int) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**retry))."""
        ceiling = min(self.max_backoff_seconds, self.backoff_base_seconds * (2**retry))
        return self._rng.uniform(0.0, ceiling)

    def _get_json(self, path: str, params: Mapping[str, str]) -> Any:
        url = self.base_url + path
        request = describe_request("GET", self._path(path), params)
        started = self._clock()
        if self._first_request_at is None:
            self._first_request_at = started
        retry = 0
        problem = "not sent"
        while True:
            self._throttle()
            left = self._budget_left()
            if left is not None and left <= 0:
                raise RegistryError(
                    f"{problem if retry else 'not sent'}; the registry time budget "
                    f"(budget_seconds={self.budget_seconds}) is spent",
                    request=request,
                    status=_status_of(problem),
                )
            self.stats.requests += 1
            retry_after: float | None = None
            timeout = self.timeout if left is None else min(self.timeout, left)
            try:
                response = self._http.get(url, params=dict(params), timeout=timeout)
            except httpx.TimeoutException as exc:
                self.stats.transport_errors += 1
                problem = f"timed out ({type(exc).__name__}, timeout {self.timeout}s)"
            except httpx.TransportError as exc:
                self.stats.transport_errors += 1
                problem = f"connection failed ({type(exc).__name__}: {exc})"
            else:
                status = response.status_code
                self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    return _decode_json(response, request)
                if status != 429 and status < 500:
                    raise RegistryError(
                        f"HTTP {status} (not retried): {_snippet(response)}",
                        request=request,
                        status=status,
                    )
                problem = f"HTTP {status}"
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if retry >= self.max_retries:
                raise RegistryError(
                    f"{problem}; gave up after {retry + 1} attempt(s) "
                    f"(max_retries={self.max_retries})",
                    request=request,
                    status=_status_of(problem),
                )
            if retry_after is not None:
                delay = min(retry_after, self.max_retry_after_seconds)
            else:
                delay = self._backoff(retry)
            spent = self._clock() - started
            if spent + delay > self.max_retry_seconds:
                raise RegistryError(
                    f"{problem}; gave up after {retry + 1} attempt(s) over {spent:.1f}s: "
                    f"waiting {delay:.1f}s more would exceed max_retry_seconds="
                    f"{self.max_retry_seconds}",
                    request=request,
                    status=_status_of(problem),
                )
            left = self._budget_left()
            if left is not None and delay >= left:
                raise RegistryError(
                    f"{problem}; gave up after {retry + 1} attempt(s): waiting {delay:.1f}s more "
                    f"would exceed the registry time budget (budget_seconds={self.budget_seconds})",
                    request=request,
                    status=_status_of(problem),
                )
            log.info("%s: %s; retry %d in %.2fs", request, problem, retry + 1, delay)
            self.stats.retries += 1
            self.stats.backoff_seconds += delay
            self._sleep(delay)
            retry += 1


def _status_of(problem: str) -> int | None:
    match = re.match(r"HTTP (\d{3})", problem)
    return int(match.group(1)) if match else None


def _snippet(response: httpx.Response, limit: int = 160) -> str:
    text = response.content[:limit].decode("utf-8", errors="replace")
    return repr(" ".join(text.split()))


def _decode_json(response: httpx.Response, request: str) -> Any:
    content_type = response.headers.get("Content-Type", "no content-type")
    try:
        return response.json()
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RegistryError(
            f"HTTP {response.status_code} body is not valid JSON ({content_type}, "
            f"{len(response.content)} bytes; {exc}): starts {_snippet(response)}",
            request=request,
            status=response.status_code,
        ) from exc


def _retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard
