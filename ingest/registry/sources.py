"""Offline registry sources: a replay directory, and the website's export files.

Replay directory
----------------
`ReplaySource(directory)` answers the same calls as `RegistryClient` (search_studies, get_study,
get_studies, data_timestamp) from files, without any network, so the pipeline's default mode
runs offline. Layout::

    <directory>/
      version.json               {"dataTimestamp": "2026-08-11T09:00:05"}
      studies/NCT01234567.json   one full study record per file (the GET /studies/{id} shape);
                                 the file name is the record's nctId
      searches/<name>.json       optional recorded searches:
                                 {"request": {"params": {"query.cond": "..."}},
                                  "pages": [<page JSON>, ...]}

A search is answered from a recorded search when its parameters equal the recorded ones
(`pageToken`, `pageSize`, `countTotal`, `fields` and `format` are ignored); the recorded pages are
followed through their `nextPageToken`s exactly as the live client follows them. Otherwise the
search is evaluated against the study records held in `studies/`, so any query of the supported
subset works offline:

- ``query.cond`` / ``query.term``: Essie text: words, "quoted phrases", parentheses, ``AND``,
  ``OR``, ``NOT`` (adjacent terms are ANDed). Every word of one alternative occurs in one field
  (conditions, keywords, condition MeSH terms, titles, nctId; ``query.term`` adds interventions)
  and none of its NOT words in any. An approximation of the registry's Essie search, which also
  uses synonyms; a text query it cannot evaluate (``AREA[...]`` inside it, an operator without a
  term) matches nothing, with a logged warning, never an exception.
- ``filter.overallStatus``, ``filter.ids``: comma-separated lists.
- ``filter.advanced``: ``AREA[Name]VALUE`` and ``AREA[Name]RANGE[lo,hi]`` terms joined by `` AND ``
  (lo/hi are dates, MIN or MAX) over StudyType, LeadSponsorClass, LeadSponsorName, Phase,
  OverallStatus, NCTId, Condition, StartDate, PrimaryCompletionDate, CompletionDate,
  LastUpdatePostDate, StudyFirstPostDate.

Anything else raises `RegistryError` naming the parameter, never a silently wrong answer. Matches
come back in nctId order; records are returned whole (a `fields` projection is not applied).

`write_replay_dir(records, out_dir, data_timestamp)` writes this layout (the synthetic data
generator calls it).

Website exports
---------------
`iter_json_download(path)` streams the website's JSON download (one JSON array of study records;
a single record object or an API page ``{"studies": [...]}`` also work), `iter_bulk_zip(path)` the
bulk download (one ``NCTxxxxxxxx.json`` per study inside a zip), `iter_export(path)` picks by
suffix. All yield study record dicts.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from ingest.registry.client import (
    MAX_PAGE_SIZE,
    RESERVED_PARAMS,
    STUDY_FIELDS,
    FetchResult,
    RegistryError,
    RequestStats,
    SearchResult,
    check_nct_id,
    check_search_params,
    collect_by_ids,
    describe_request,
    paginate,
    study_nct_id,
    unique_nct_ids,
)

log = logging.getLogger(__name__)

VERSION_FILE = "version.json"
STUDIES_DIR = "studies"
SEARCHES_DIR = "searches"


# --------------------------------------------------------------------------- writing


def write_replay_dir(
    records: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    data_timestamp: str,
    *,
    searches: Mapping[str, tuple[Mapping[str, str], Sequence[Mapping[str, Any]]]] | None = None,
) -> int:
    """Write study records (and optional recorded searches) as a replay directory.

    `searches` maps a file stem to ``(params, pages)``. Existing files of the same names are
    replaced; other files are left alone. Returns the number of study files written.
    """
    if not isinstance(data_timestamp, str) or not data_timestamp.strip():
        raise ValueError("data_timestamp must be a non-empty string")
    root = Path(out_dir)
    studies_dir = root / STUDIES_DIR
    studies_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for record in records:
        nct_id = study_nct_id(record)
        if nct_id is None:
            raise ValueError(f"record #{written + 1} has no protocolSection...nctId")
        _write_json(studies_dir / f"{check_nct_id(nct_id)}.json", record)
        written += 1
    _write_json(root / VERSION_FILE, {"dataTimestamp": data_timestamp})
    for name, (params, pages) in (searches or {}).items():
        if not re.fullmatch(r"[\w.-]+", name):
            raise ValueError(f"search name must be a plain file stem: {name!r}")
        (root / SEARCHES_DIR).mkdir(exist_ok=True)
        body = {"request": {"params": dict(params)}, "pages": list(pages)}
        _write_json(root / SEARCHES_DIR / f"{name}.json", body)
    return written


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)


# --------------------------------------------------------------------------- replay


class ReplaySource:
    """Answers `RegistryClient` calls from a replay directory (layout: module docstring)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"replay directory not found: {self.directory}")
        self.stats = RequestStats()  # stays at zero: no HTTP
        self.calls = 0  # calls answered from files
        self._records: dict[str, dict[str, Any]] | None = None
        self._searches: list[tuple[dict[str, str], list[Any], Path]] | None = None

    # -- RegistrySource

    def data_timestamp(self) -> str:
        self.calls += 1
        path = self.directory / VERSION_FILE
        payload = _read_json(path, "GET /version")
        stamp = payload.get("dataTimestamp") if isinstance(payload, dict) else None
        if not isinstance(stamp, str) or not stamp:
            raise RegistryError(f"no dataTimestamp string in {path}", request="GET /version")
        return stamp

    def get_study(self, nct_id: str, fields: Sequence[str] | None = None) -> dict[str, Any]:
        self.calls += 1
        nct_id = check_nct_id(nct_id)
        request = f"GET /studies/{nct_id} (replay {self.directory})"
        if self._records is not None:
            record = self._records.get(nct_id)
        else:
            path = self.directory / STUDIES_DIR / f"{nct_id}.json"
            record = _read_json(path, request) if path.is_file() else None
        if record is None:
            raise RegistryError(
                "no such study in the replay directory", request=request, status=404
            )
        if study_nct_id(record) != nct_id:
            raise RegistryError(
                f"the file holds {study_nct_id(record)!r}, not {nct_id}", request=request
            )
        return record

    def get_studies(
        self,
        nct_ids: Iterable[str],
        fields: Sequence[str] = STUDY_FIELDS,
        batch_size: int = 100,
    ) -> FetchResult:
        self.calls += 1
        wanted = unique_nct_ids(nct_ids)
        records = self._load_records()
        return collect_by_ids(wanted, (records[n] for n in wanted if n in records))

    def search_studies(
        self,
        params: Mapping[str, str],
        fields: Sequence[str] = STUDY_FIELDS,
        page_size: int = MAX_PAGE_SIZE,
        max_studies: int | None = None,
    ) -> SearchResult:
        self.calls += 1
        wanted = check_search_params(params)
        for recorded_params, pages, path in self._load_searches():
            if recorded_params == wanted:
                return self._replay_pages(pages, path, params, fields, page_size, max_studies)
        matches = [
            record
            for _, record in sorted(self._load_records().items())
            if _compile_query(wanted)(record)
        ]
        return self._serve_matches(matches, params, fields, page_size, max_studies)

    # -- internals

    def _describe(self, query: Mapping[str, str], what: str) -> str:
        return describe_request("GET", "/studies", query) + f" ({what})"

    def _replay_pages(
        self,
        pages: list[Any],
        path: Path,
        params: Mapping[str, str],
        fields: Sequence[str],
        page_size: int,
        max_studies: int | None,
    ) -> SearchResult:
        by_token: dict[str, int] = {}
        for i, page in enumerate(pages[:-1]):
            token = page.get("nextPageToken") if isinstance(page, dict) else None
            if isinstance(token, str):
                by_token[token] = i + 1

        def fetch(query: dict[str, str]) -> Any:
            token = query.get("pageToken")
            if token is None:
                return pages[0]
            if token not in by_token:
                # the recording stops here (recorded fixtures are often minimised): end the
                # search like an empty page; SearchResult.count_mismatch shows what is missing
                log.warning("%s: no recorded page for token %s", path, token)
                return {"studies": []}
            return pages[by_token[token]]

        return paginate(
            fetch,
            lambda query: self._describe(query, f"replay {path}"),
            params,
            fields,
            page_size,
            max_studies,
        )

    def _serve_matches(
        self,
        matches: list[dict[str, Any]],
        params: Mapping[str, str],
        fields: Sequence[str],
        page_size: int,
        max_studies: int | None,
    ) -> SearchResult:
        def fetch(query: dict[str, str]) -> Any:
            size = int(query["pageSize"])
            offset = int(query.get("pageToken", "0"))
            page: dict[str, Any] = {"studies": matches[offset : offset + size]}
            if "countTotal" in query:
                page["totalCount"] = len(matches)
            if offset + size < len(matches):
                page["nextPageToken"] = str(offset + size)
            return page

        return paginate(
            fetch,
            lambda query: self._describe(query, f"replay {self.directory}"),
            params,
            fields,
            page_size,
            max_studies,
        )

    def _load_records(self) -> dict[str, dict[str, Any]]:
        if self._records is None:
            records: dict[str, dict[str, Any]] = {}
            for path in sorted((self.directory / STUDIES_DIR).glob("NCT*.json")):
                record = _read_json(path, f"replay {path}")
                nct_id = study_nct_id(record)
                if nct_id is None or nct_id != path.stem:
                    raise RegistryError(
                        f"{path} holds {nct_id!r}; replay study files are named by their nctId"
                    )
                records[nct_id] = record
            self._records = records
        return self._records

    def _load_searches(self) -> list[tuple[dict[str, str], list[Any], Path]]:
        if self._searches is None:
            searches = []
            for path in sorted((self.directory / SEARCHES_DIR).glob("*.json")):
                body = _read_json(path, f"replay {path}")
                request = body.get("request") if isinstance(body, dict) else None
                params = request.get("params") if isinstance(request, dict) else None
                pages = body.get("pages") if isinstance(body, dict) else None
                if not isinstance(params, dict) or not isinstance(pages, list) or not pages:
                    raise RegistryError(
                        f"{path}: expected {{'request': {{'params': {{...}}}}, "
                        "'pages': [<page>, ...]}} with at least one page"
                    )
                kept = {k: v for k, v in params.items() if k not in RESERVED_PARAMS}
                searches.append((check_search_params(kept), pages, path))
            self._searches = searches
        return self._searches


def _read_json(path: Path, request: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise RegistryError(f"{path} not found", request=request) from exc
    except ValueError as exc:
        raise RegistryError(f"{path} is not valid JSON: {exc}", request=request) from exc


# --------------------------------------------------------------------------- query evaluation

Predicate = Callable[[dict[str, Any]], bool]

_WORD = re.compile(r"\w+")


def _words(text: str) -> frozenset[str]:
    text = unicodedata.normalize("NFKD", text.casefold())
    return frozenset(_WORD.findall("".join(c for c in text if not unicodedata.combining(c))))


def _mod(record: dict[str, Any], name: str) -> dict[str, Any]:
    section = record.get("protocolSection")
    module = section.get(name) if isinstance(section, dict) else None
    return module if isinstance(module, dict) else {}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _condition_texts(record: dict[str, Any]) -> list[str]:
    conditions = _mod(record, "conditionsModule")
    ident = _mod(record, "identificationModule")
    derived = record.get("derivedSection")
    browse = derived.get("conditionBrowseModule") if isinstance(derived, dict) else None
    meshes = browse.get("meshes") if isinstance(browse, dict) else None
    mesh_terms = (
        [m.get("term") for m in meshes if isinstance(m, dict)] if isinstance(meshes, list) else []
    )
    return [
        *_strings(conditions.get("conditions")),
        *_strings(conditions.get("keywords")),
        *_strings(mesh_terms),
        *_strings(ident.get("briefTitle")),
        *_strings(ident.get("officialTitle")),
        *_strings(ident.get("nctId")),
    ]


def _term_texts(record: dict[str, Any]) -> list[str]:
    interventions = _mod(record, "armsInterventionsModule").get("interventions")
    names = (
        [i.get("name") for i in interventions if isinstance(i, dict)]
        if isinstance(interventions, list)
        else []
    )
    return [*_condition_texts(record), *_strings(names)]


#: A conjunction of an Essie text query in disjunctive normal form: words that must all occur in
#: one field, and words that must occur in none.
_Conjunction = tuple[frozenset[str], frozenset[str]]
_TRUE: list[_Conjunction] = [(frozenset(), frozenset())]
#: More alternatives than this after expanding ORs: the query is answered as "no match".
_MAX_ALTERNATIVES = 256
_TOKEN = re.compile(r'"[^"]*"?|\(|\)|[^\s()"]+')


class _Unanswerable(ValueError):
    """A text query replay cannot evaluate (the registry might): answered as no match."""


def _and(left: list[_Conjunction], right: list[_Conjunction]) -> list[_Conjunction]:
    out = [(lp | rp, ln | rn) for lp, ln in left for rp, rn in right]
    if len(out) > _MAX_ALTERNATIVES:
        raise _Unanswerable(f"more than {_MAX_ALTERNATIVES} alternatives")
    return out


def _not(operand: list[_Conjunction]) -> list[_Conjunction]:
    """De Morgan: NOT (C1 OR C2 ...) = NOT C1 AND NOT C2 ..., NOT (a b -c) = -a OR -b OR c."""
    result = _TRUE
    for positive, negative in operand:
        negated = [(frozenset(), frozenset({w})) for w in positive]
        negated += [(frozenset({w}), frozenset()) for w in negative]
        if not negated:  # NOT of "always true": nothing matches
            return []
        result = _and(result, negated)
    return result


class _EssieText:
    """Recursive descent over Essie's text syntax: words, "quoted phrases", ( ), AND, OR, NOT
    (adjacent terms are ANDed), into disjunctive normal form."""

    def __init__(self, query: str):
        self.tokens = _TOKEN.findall(query)
        self.at = 0

    def parse(self) -> list[_Conjunction]:
        result = self._or()
        if self.at < len(self.tokens):
            raise _Unanswerable(f"unexpected {self.tokens[self.at]!r}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _or(self) -> list[_Conjunction]:
        result = self._and()
        while self._peek() == "OR":
            self.at += 1
            result = result + self._and()
            if len(result) > _MAX_ALTERNATIVES:
                raise _Unanswerable(f"more than {_MAX_ALTERNATIVES} alternatives")
        return result

    def _and(self) -> list[_Conjunction]:
        result = self._unary()
        while self._peek() not in (None, ")", "OR"):
            if self._peek() == "AND":
                self.at += 1
            result = _and(result, self._unary())
        return result

    def _unary(self) -> list[_Conjunction]:
        token = self._peek()
        if token is None or token in (")", "OR", "AND"):
            raise _Unanswerable(f"a term is missing before {token or 'the end'}")
        self.at += 1
        if token == "NOT":
            return _not(self._unary())
        if token == "(":
            inner = self._or()
            if self._peek() != ")":
                raise _Unanswerable("unbalanced parentheses")
            self.at += 1
            return inner
        if token.startswith("AREA[") or token.startswith("RANGE["):
            raise _Unanswerable(f"{token.split(']')[0]}] inside a text query")
        words = _words(token.strip('"'))
        return [(words, frozenset())] if words else _TRUE


def _text_predicate(
    query: str, texts: Callable[[dict[str, Any]], list[str]], key: str
) -> Predicate:
    """Essie text (words, quoted phrases, parentheses, AND/OR/NOT) matched the way replay can:
    each alternative's words all occur in one field (conditions, titles, ...; phrases are
    treated as their words), its NOT words in none. A query replay cannot evaluate (operators
    without terms, AREA[...] inside) matches nothing, with a warning: never an exception."""
    try:
        alternatives = _EssieText(query).parse()
    except _Unanswerable as exc:
        log.warning(
            "%s: replay cannot evaluate %s=%r (%s); answering no match",
            describe_request("GET", "/studies", {key: query}),
            key,
            query,
            exc,
        )
        return lambda record: False

    def match(record: dict[str, Any]) -> bool:
        field_words = [_words(text) for text in texts(record)]
        return any(
            any(positive <= words for words in field_words)
            and not any(negative & words for words in field_words)
            for positive, negative in alternatives
        )

    return match


def _date_of(struct_key: str) -> Callable[[dict[str, Any]], list[str]]:
    def get(record: dict[str, Any]) -> list[str]:
        struct = _mod(record, "statusModule").get(struct_key)
        return _strings(struct.get("date")) if isinstance(struct, dict) else []

    return get


_AREAS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "studytype": ("enum", lambda r: _strings(_mod(r, "designModule").get("studyType"))),
    "phase": ("enum", lambda r: _strings(_mod(r, "designModule").get("phases"))),
    "overallstatus": ("enum", lambda r: _strings(_mod(r, "statusModule").get("overallStatus"))),
    "nctid": ("enum", lambda r: _strings(_mod(r, "identificationModule").get("nctId"))),
    "leadsponsorclass": (
        "enum",
        lambda r: _strings(
            (_mod(r, "sponsorCollaboratorsModule").get("leadSponsor") or {}).get("class")
        ),
    ),
    "leadsponsorname": (
        "enum",
        lambda r: _strings(
            (_mod(r, "sponsorCollaboratorsModule").get("leadSponsor") or {}).get("name")
        ),
    ),
    "condition": ("text", lambda r: _strings(_mod(r, "conditionsModule").get("conditions"))),
    "startdate": ("date", _date_of("startDateStruct")),
    "primarycompletiondate": ("date", _date_of("primaryCompletionDateStruct")),
    "completiondate": ("date", _date_of("completionDateStruct")),
    "lastupdatepostdate": ("date", _date_of("lastUpdatePostDateStruct")),
    "studyfirstpostdate": ("date", _date_of("studyFirstPostDateStruct")),
}

_AREA_TERM = re.compile(r"AREA\[(\w+)\](.+)", re.DOTALL)
_RANGE = re.compile(r"RANGE\[\s*([^,\]]*)\s*,\s*([^\]]*)\s*\]")


def _split_and(expression: str) -> list[str]:
    """Split on top-level `` AND `` (outside brackets/parentheses); unwrap parenthesised terms."""
    parts, depth, start = [], 0, 0
    i = 0
    while i < len(expression):
        ch = expression[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and expression.startswith(" AND ", i):
            parts.append(expression[start:i])
            i += 5
            start = i
            continue
        i += 1
    parts.append(expression[start:])
    out = []
    for part in (p.strip() for p in parts):
        if part.startswith("(") and part.endswith(")"):
            out.extend(_split_and(part[1:-1]))
        elif part:
            out.append(part)
    return out


def _bound(text: str, request: str) -> date | None:
    text = text.strip()
    if text.upper() in ("MIN", "MAX", ""):
        return None
    from ingest.registry.flatten import parse_partial_date  # polars: only when replaying

    parsed, _ = parse_partial_date(text)
    if parsed is None:
        raise RegistryError(f"replay cannot read the range bound {text!r}", request=request)
    return parsed


def _advanced_predicate(expression: str) -> Predicate:
    request = describe_request("GET", "/studies", {"filter.advanced": expression})
    predicates: list[Predicate] = []
    for term in _split_and(expression):
        match = _AREA_TERM.fullmatch(term)
        if not match or re.search(r"\b(OR|NOT)\b", term):
            raise RegistryError(
                f"replay supports AREA[...] terms joined by AND, not {term!r}", request=request
            )
        area, value = match.group(1), match.group(2).strip()
        if area.lower() not in _AREAS:
            raise RegistryError(
                f"replay does not know AREA[{area}]; known: " + ", ".join(sorted(_AREAS)),
                request=request,
            )
        kind, getter = _AREAS[area.lower()]
        rng = _RANGE.fullmatch(value)
        if kind == "date":
            if not rng:
                raise RegistryError(
                    f"AREA[{area}] needs RANGE[lo,hi] in replay, got {value!r}", request=request
                )
            predicates.append(
                _range_predicate(getter, _bound(rng[1], request), _bound(rng[2], request))
            )
        elif rng:
            raise RegistryError(f"replay cannot range over AREA[{area}]", request=request)
        elif kind == "text":
            predicates.append(_text_predicate(value.strip('"'), getter, f"AREA[{area}]"))
        else:
            wanted = value.strip('"').casefold()
            predicates.append(lambda r, g=getter, w=wanted: any(v.casefold() == w for v in g(r)))
    return lambda record: all(p(record) for p in predicates)


def _range_predicate(
    getter: Callable[[dict[str, Any]], list[str]], low: date | None, high: date | None
) -> Predicate:
    from ingest.registry.flatten import parse_partial_date  # polars: only when replaying

    def match(record: dict[str, Any]) -> bool:
        for raw in getter(record):
            value, _ = parse_partial_date(raw)
            if value is None:
                continue
            if (low is None or value >= low) and (high is None or value <= high):
                return True
        return False

    return match


def _compile_query(params: Mapping[str, str]) -> Predicate:
    predicates: list[Predicate] = []
    for key, value in params.items():
        if key == "query.cond":
            predicates.append(_text_predicate(value, _condition_texts, key))
        elif key == "query.term":
            predicates.append(_text_predicate(value, _term_texts, key))
        elif key == "filter.overallStatus":
            statuses = {s.strip().upper() for s in value.split(",") if s.strip()}
            predicates.append(
                lambda r, s=statuses: _mod(r, "statusModule").get("overallStatus") in s
            )
        elif key == "filter.ids":
            ids = {s.strip().upper() for s in value.split(",") if s.strip()}
            predicates.append(lambda r, i=ids: study_nct_id(r) in i)
        elif key == "filter.advanced":
            predicates.append(_advanced_predicate(value))
        else:
            raise RegistryError(
                f"replay cannot answer parameter {key!r}; supported: query.cond, query.term, "
                "filter.overallStatus, filter.ids, filter.advanced (or record this search "
                "under searches/)",
                request=describe_request("GET", "/studies", params),
            )
    return lambda record: all(p(record) for p in predicates)


# --------------------------------------------------------------------------- website exports


def iter_export(path: str | Path) -> Iterator[dict[str, Any]]:
    """Study records of a website export: a bulk ``.zip`` or a JSON download."""
    path = Path(path)
    if path.suffix.lower() == ".zip":
        return iter_bulk_zip(path)
    return iter_json_download(path)


def iter_bulk_zip(path: str | Path) -> Iterator[dict[str, Any]]:
    """One record per ``NCTxxxxxxxx.json`` member of the bulk-download zip, in archive order."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename
            base = name.rsplit("/", 1)[-1]
            if info.is_dir() or not base.lower().endswith(".json"):
                continue
            if name.startswith("__MACOSX/") or base.startswith("._"):
                continue
            try:
                record = json.loads(archive.read(info))
            except ValueError as exc:
                raise RegistryError(f"{path}!{name} is not valid JSON: {exc}") from exc
            if not isinstance(record, dict):
                raise RegistryError(
                    f"{path}!{name} holds {type(record).__name__}, not a study object"
                )
            yield record


_CHUNK = 1 << 20


def iter_json_download(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream the records of a JSON download without loading the whole array at once.

    Accepts a JSON array of records, a single record object, or an API page
    ``{"studies": [...]}``.
    """
    path = Path(path)
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8-sig") as fh:
        buf = fh.read(_CHUNK)
        eof = not buf
        pos = _skip_ws(buf, 0)
        while pos == len(buf) and not eof:
            more = fh.read(_CHUNK)
            eof = not more
            buf, pos = buf + more, _skip_ws(buf + more, 0)
        if pos == len(buf):
            raise RegistryError(f"{path} is empty")
        if buf[pos] == "{":
            try:
                payload = json.loads(buf[pos:] + fh.read())
            except ValueError as exc:
                raise RegistryError(f"{path} is not valid JSON: {exc}") from exc
            studies = payload.get("studies") if "protocolSection" not in payload else None
            records = studies if isinstance(studies, list) else [payload]
            for i, record in enumerate(records):
                if not isinstance(record, dict):
                    raise RegistryError(f"{path}: item {i} is not a study object")
                yield record
            return
        if buf[pos] != "[":
            raise RegistryError(f"{path}: expected a JSON array of study records")
        pos += 1
        index = 0
        expect_value = True  # after '[' or ','
        while True:
            pos = _skip_ws(buf, pos)
            if pos >= len(buf) - 1 and not eof:
                # keep a little lookahead so a value is never parsed from a cut buffer edge
                more = fh.read(_CHUNK)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            if pos >= len(buf):
                raise RegistryError(f"{path} ends inside the array after {index} record(s)")
            ch = buf[pos]
            if ch == "]" and (index == 0 or not expect_value):
                if buf[pos + 1 :].strip() or fh.read(_CHUNK).strip():
                    raise RegistryError(f"{path}: data after the closing ']'")
                return
            if ch == "," and not expect_value:
                expect_value = True
                pos += 1
                continue
            if not expect_value:
                raise RegistryError(f"{path}: expected ',' or ']' after record {index}")
            try:
                record, end = decoder.raw_decode(buf, pos)
            except ValueError as exc:
                if eof:
                    raise RegistryError(
                        f"{path}: record {index} is not valid JSON (truncated file?): {exc}"
                    ) from exc
                # the record runs past the buffer: read at least as much again (doubling keeps
                # re-parsing of one large record linear)
                more = fh.read(max(_CHUNK, len(buf) - pos))
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            if not isinstance(record, dict):
                raise RegistryError(f"{path}: item {index} is not a study object")
            yield record
            index += 1
            expect_value = False
            pos = end


def _skip_ws(buf: str, pos: int) -> int:
    while pos < len(buf) and buf[pos] in " \t\r\n":
        pos += 1
    return pos
