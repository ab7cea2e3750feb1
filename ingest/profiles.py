"""SMO profiles: one YAML file per SMO that maps its exports onto the canonical feeds.

A profile is reviewed like code and validated when loaded; any mistake is a `ProfileError`
naming the file and the key path (`feeds.subjects.date_formats.screened_dte`), never a
traceback. Format reference: docs/profiles.md.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from expectations.feeds import FEEDS, SPONSOR_FEEDS, SPONSOR_ID, is_age_band
from expectations.identifiers import direct_identifier_kind

FileType = Literal["csv", "xlsx", "xport"]
Scope = Literal["study", "all_studies"]
PartialDates = Literal["reject", "first_day"]
#: The date format under which ISO 8601 partial dates (`2014-03`, `2014`) may be accepted.
ISO_DATE = "%Y-%m-%d"

EXCEL_SERIAL = "excel_serial"
#: Date formats a profile may declare (strftime syntax, plus Excel serial day numbers).
DATE_FORMAT_EXAMPLES = {
    "%Y-%m-%d": "2024-03-05",
    "%d/%m/%Y": "05/03/2024",
    "%m/%d/%Y": "03/05/2024",
    "%d-%b-%Y": "5-Mar-2024",
    "%d.%m.%Y": "05.03.2024",
    "%Y/%m/%d": "2024/03/05",
    "%Y%m%d": "20240305",
    EXCEL_SERIAL: "45356",
}
KNOWN_ENCODINGS = {"utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16", "shift_jis", "gb18030"}
#: Excel serial day numbers a cell can hold: 1 (1900-01-01) to 2958465 (9999-12-31); 0 to
#: 2957003 in a workbook on the 1904 date system.
EXCEL_SERIAL_MAX = {False: 2958465, True: 2957003}

_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_MONTH_NAMES = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
#: The strftime directives a date format may use, and what each must match in a value.
#: `%d`/`%m` take one or two digits (5-Mar-2024) unless another number follows or precedes
#: without a separator (`%Y%m%d`), where only two digits are unambiguous.
DATE_DIRECTIVES = {
    "Y": r"[0-9]{4}",
    "y": r"[0-9]{2}",
    "m": r"[0-9]{1,2}",
    "d": r"[0-9]{1,2}",
    "b": f"(?i:{_MONTHS})",
    "B": f"(?i:{_MONTH_NAMES})",
}
_NUMERIC_DIRECTIVES = {"Y", "y", "m", "d"}


def regex_literal(text: str) -> str:
    """`text` as a literal in a Rust (polars) regex: punctuation and spaces escaped as hex."""
    return "".join(c if c.isalnum() or ord(c) > 127 else f"\\x{{{ord(c):X}}}" for c in text)


def date_format_regex(fmt: str) -> str:
    """The regex (Rust syntax, for polars) a value must match in full to be read with `fmt`.

    Parsers are lenient (chrono reads `12/11/25` under `%d/%m/%Y` as the year 25); the regex
    makes the declared format exact. Raises ValueError for a directive that is not supported.
    """
    tokens = re.findall(r"%.?|[^%]+", fmt)
    numeric = [len(t) == 2 and t[1] in _NUMERIC_DIRECTIVES for t in tokens]
    out = []
    for i, token in enumerate(tokens):
        if not token.startswith("%"):
            out.append(regex_literal(token))
        elif token == "%%":
            out.append(regex_literal("%"))
        elif len(token) == 2 and token[1] in DATE_DIRECTIVES:
            body = DATE_DIRECTIVES[token[1]]
            adjacent = (i > 0 and numeric[i - 1]) or (i + 1 < len(tokens) and numeric[i + 1])
            if token[1] in "md" and adjacent:
                body = r"[0-9]{2}"
            out.append(body)
        else:
            supported = ", ".join(f"%{d}" for d in DATE_DIRECTIVES)
            raise ValueError(f"'{token}' is not a supported date directive (use {supported})")
    return "^" + "".join(out) + "$"


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the key."""

    def __init__(self, path: Path | str, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}")


@dataclass(frozen=True)
class FileOptions:
    type: FileType = "csv"
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    #: Decimal and thousands separators of numbers in CSV text (XLSX and XPORT numbers are
    #: read from numeric cells). `decimal_comma: true` in a profile means `decimal: ","`.
    decimal: str = "."
    thousands: str | None = None
    #: Whether a quoted value may span lines; otherwise a quote left open is an error.
    multiline_values: bool = False
    sheet: str | None = None
    #: 1-based row number of the header in a workbook (rows above it are a title block).
    header_row: int = 1
    #: Cell texts that mean "no value" (e.g. `NA`), besides an empty cell; compared after
    #: trimming spaces, in every column. SAS XPORT blank character values are always missing.
    null_values: tuple[str, ...] = ()

    @property
    def decimal_comma(self) -> bool:
        return self.decimal == ","


@dataclass(frozen=True)
class FeedProfile:
    feed: str
    file_pattern: str
    scope: Scope
    file: FileOptions
    columns: dict[str, str]
    date_formats: dict[str, str]
    codes: dict[str, dict[str, str]]
    constants: dict[str, str]
    drop: frozenset[str]
    #: Identifier columns removed as soon as the file is read; the stored copy is redacted.
    strip_identifiers: frozenset[str] = frozenset()
    #: ISO 8601 partial dates (`2014-03`, `2014`): rejected, or read as the first day of the
    #: month or year with `<column>_precision` saying how much of the date was given.
    partial_dates: PartialDates = "reject"
    _regex: re.Pattern[str] = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    def match(self, file_name: str) -> dict[str, str] | None:
        """Fields captured from a matching file name (study_id, delivery_date), else None."""
        m = self._regex.fullmatch(file_name)
        return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}

    @property
    def delivery_date_format(self) -> str | None:
        m = re.search(r"\{delivery_date:([^}]+)\}", self.file_pattern)
        return m.group(1) if m else None


@dataclass(frozen=True)
class Profile:
    smo_id: str
    version: str
    description: str
    feeds: dict[str, FeedProfile]
    path: Path
    #: A CDISC SDTM source (`ingest.sdtm.SdtmSpec`): a delivery is a set of domain files.
    sdtm: Any = None

    def feed_for(self, file_name: str) -> tuple[FeedProfile, dict[str, str]] | None:
        for feed_profile in self.feeds.values():
            fields = feed_profile.match(file_name)
            if fields is not None:
                return feed_profile, fields
        return None

    def parse_delivery_date(
        self, feed_profile: FeedProfile, fields: dict[str, str]
    ) -> dt.date | None:
        raw = fields.get("delivery_date")
        if raw is None:
            return None
        return dt.datetime.strptime(raw, feed_profile.delivery_date_format).date()


_STRFTIME_REGEX = {"%Y": r"\d{4}", "%m": r"\d{2}", "%d": r"\d{2}", "%H": r"\d{2}", "%M": r"\d{2}"}


def _pattern_regex(pattern: str, where: str, path: Path) -> re.Pattern[str]:
    """`sites_{study_id}_{delivery_date:%Y%m%d}.csv` -> a regex; `*` matches anything."""
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)(?::([^}]+))?\}|\*", pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        pos = m.end()
        if m.group(0) == "*":
            out.append(".*?")
            continue
        name, fmt = m.group(1), m.group(2)
        if name == "domain":
            out.append(r"(?P<domain>[A-Za-z]{2}|supp[A-Za-z]{2})")
        elif name == "study_id":
            out.append(r"(?P<study_id>[A-Za-z0-9][A-Za-z0-9._-]*?)")
        elif name == "delivery_date":
            if not fmt:
                raise ProfileError(
                    path, where, "{delivery_date} needs a format, e.g. {delivery_date:%Y%m%d}"
                )
            body = "".join(
                _STRFTIME_REGEX.get(tok, re.escape(tok)) for tok in re.findall(r"%\w|[^%]+", fmt)
            )
            out.append(f"(?P<delivery_date>{body})")
        else:
            raise ProfileError(
                path,
                where,
                f"unknown placeholder {{{name}}} (use study_id, delivery_date; domain in "
                "sdtm.file_pattern)",
            )
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out), re.IGNORECASE)


def _mapping(value: Any, path: Path, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProfileError(path, where, f"expected a mapping, got {type(value).__name__}")
    return value


def _check_keys(value: dict, allowed: set[str], path: Path, where: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ProfileError(
            path, f"{prefix}{unknown[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})"
        )


def _file_options(raw: dict, base: FileOptions, path: Path, where: str) -> FileOptions:
    _check_keys(raw, {*FileOptions.__dataclass_fields__, "decimal_comma"}, path, where)
    raw = dict(raw)
    if "null_values" in raw:
        tokens = raw["null_values"]
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ProfileError(
                path, f"{where}.null_values", 'expected a list of texts, e.g. ["", "NA"]'
            )
        raw["null_values"] = tuple(dict.fromkeys(t.strip() for t in tokens))
    if "decimal_comma" in raw:  # the older spelling of `decimal: ","`
        flag = raw.pop("decimal_comma")
        if not isinstance(flag, bool):
            raise ProfileError(path, f"{where}.decimal_comma", "must be true or false")
        implied = "," if flag else "."
        if raw.setdefault("decimal", implied) != implied:
            raise ProfileError(
                path, f"{where}.decimal", f"contradicts decimal_comma: {str(flag).lower()}"
            )
    opts = FileOptions(**{**base.__dict__, **raw})
    numbers = {"decimal", "thousands"} & set(raw)
    if numbers and opts.type != "csv":
        raise ProfileError(
            path,
            f"{where}.{sorted(numbers)[0]}",
            f"applies to csv files only: {opts.type} numbers are read from numeric cells",
        )
    if opts.type != "csv":  # inherited CSV number options do not apply to workbooks
        opts = replace(opts, decimal=".", thousands=None)
    if opts.decimal not in (".", ","):
        raise ProfileError(path, f"{where}.decimal", "must be '.' or ','")
    if opts.thousands is not None and (
        not isinstance(opts.thousands, str)
        or len(opts.thousands) != 1
        or opts.thousands.isdigit()
        or opts.thousands == opts.decimal
    ):
        raise ProfileError(
            path,
            f"{where}.thousands",
            "must be one character other than a digit and the decimal separator (or omitted)",
        )
    if not isinstance(opts.multiline_values, bool):
        raise ProfileError(path, f"{where}.multiline_values", "must be true or false")
    if opts.type not in ("csv", "xlsx", "xport"):
        raise ProfileError(path, f"{where}.type", f"'{opts.type}' is not one of csv, xlsx, xport")
    if opts.encoding.lower() not in KNOWN_ENCODINGS:
        raise ProfileError(
            path, f"{where}.encoding", f"'{opts.encoding}' is not one of {sorted(KNOWN_ENCODINGS)}"
        )
    if opts.type == "csv" and len(opts.delimiter) != 1:
        raise ProfileError(path, f"{where}.delimiter", "must be a single character")
    if not isinstance(opts.header_row, int) or opts.header_row < 1:
        raise ProfileError(path, f"{where}.header_row", "must be a row number >= 1")
    return opts


def _check_date_format(fmt: Any, path: Path, where: str) -> str:
    if fmt == EXCEL_SERIAL:
        return fmt
    if not isinstance(fmt, str) or "%" not in fmt:
        raise ProfileError(
            path, where, f"'{fmt}' is not a date format (e.g. %d/%m/%Y or {EXCEL_SERIAL})"
        )
    try:
        dt.date(2024, 3, 5).strftime(fmt)
        date_format_regex(fmt)
    except ValueError as exc:
        raise ProfileError(path, where, f"'{fmt}' is not a valid date format: {exc}") from None
    return fmt


FEED_KEYS = {
    "feed",
    "file_pattern",
    "scope",
    "file",
    "columns",
    "date_format",
    "date_formats",
    "codes",
    "constants",
    "drop",
    "strip_identifiers",
    "partial_dates",
}
TOP_KEYS = {
    "smo_id",
    "profile_version",
    "description",
    "file",
    "date_format",
    "partial_dates",
    "feeds",
    "sdtm",
}


def _partial_dates(value: Any, path: Path, where: str) -> PartialDates:
    if value not in ("reject", "first_day"):
        raise ProfileError(path, where, f"'{value}' is not one of reject, first_day")
    return value


def _feed_profile(
    name: str,
    raw: dict,
    base_file: FileOptions,
    base_date: str | None,
    smo_id: str,
    path: Path,
    base_partial: PartialDates = "reject",
) -> FeedProfile:
    where = f"feeds.{name}"
    # An entry may read a second format of a feed (CSV and XLSX): `feed:` names the feed then.
    name = raw.get("feed", name)
    if not isinstance(name, str) or name not in FEEDS:
        raise ProfileError(path, where, f"unknown feed (known: {', '.join(FEEDS)})")
    feed = FEEDS[name]
    _check_keys(raw, FEED_KEYS, path, where)
    if (smo_id == SPONSOR_ID) != (feed.sender == "sponsor"):
        raise ProfileError(
            path,
            where,
            f"feed {name} is delivered by the sponsor only (profile smo_id {SPONSOR_ID})"
            if feed.sender == "sponsor"
            else f"smo_id {SPONSOR_ID} is reserved for the sponsor's own feeds "
            f"({', '.join(SPONSOR_FEEDS)}); an SMO profile needs its own smo_id",
        )
    pattern = raw.get("file_pattern")
    if not isinstance(pattern, str) or not pattern:
        raise ProfileError(
            path, f"{where}.file_pattern", "required: the file name pattern of this feed"
        )
    scope = raw.get("scope", "all_studies" if not feed.per_study else None)
    if scope not in ("study", "all_studies"):
        raise ProfileError(
            path, f"{where}.scope", "required: 'study' (one study per file) or 'all_studies'"
        )
    if scope == "study" and "{study_id}" not in pattern:
        raise ProfileError(
            path, f"{where}.file_pattern", "a study-scoped feed needs {study_id} in its pattern"
        )
    if "{domain}" in pattern:
        raise ProfileError(
            path, f"{where}.file_pattern", "{domain} belongs in sdtm.file_pattern only"
        )
    regex = _pattern_regex(pattern, f"{where}.file_pattern", path)
    file_opts = _file_options(
        _mapping(raw.get("file"), path, f"{where}.file"), base_file, path, f"{where}.file"
    )
    if file_opts.type == "xlsx" and not file_opts.sheet:
        raise ProfileError(path, f"{where}.file.sheet", "an xlsx feed must name its sheet")

    columns = {str(k): v for k, v in _mapping(raw.get("columns"), path, f"{where}.columns").items()}
    for source, target in columns.items():
        if target not in feed.column_names:
            raise ProfileError(
                path, f"{where}.columns.{source}", f"'{target}' is not a column of feed {name}"
            )
    constants = {
        k: str(v) for k, v in _mapping(raw.get("constants"), path, f"{where}.constants").items()
    }
    if "smo_id" in feed.column_names:
        constants.setdefault("smo_id", smo_id)
    for target in constants:
        if target not in feed.column_names:
            raise ProfileError(
                path, f"{where}.constants.{target}", f"'{target}' is not a column of feed {name}"
            )

    default_date = raw.get("date_format", base_date)
    date_formats: dict[str, str] = {}
    declared = _mapping(raw.get("date_formats"), path, f"{where}.date_formats")
    for col in declared:
        if col not in feed.names_of("date"):
            raise ProfileError(
                path, f"{where}.date_formats.{col}", f"'{col}' is not a date column of feed {name}"
            )
    for col in feed.names_of("date"):
        fmt = declared.get(col, default_date)
        if fmt is None:
            if col in columns.values():
                raise ProfileError(
                    path, f"{where}.date_formats.{col}", "no date format declared (set date_format)"
                )
            continue
        date_formats[col] = _check_date_format(fmt, path, f"{where}.date_formats.{col}")

    codes: dict[str, dict[str, str]] = {}
    for col, table in _mapping(raw.get("codes"), path, f"{where}.codes").items():
        if col not in feed.column_names:
            raise ProfileError(
                path, f"{where}.codes.{col}", f"'{col}' is not a column of feed {name}"
            )
        table = _mapping(table, path, f"{where}.codes.{col}")
        allowed = feed.column(col).enum
        for source_code, target in table.items():
            if allowed and target not in allowed:
                raise ProfileError(
                    path,
                    f"{where}.codes.{col}.{source_code}",
                    f"'{target}' is not one of {', '.join(allowed)}",
                )
            if col == "age_group" and not is_age_band(str(target)):
                raise ProfileError(
                    path,
                    f"{where}.codes.{col}.{source_code}",
                    f"'{target}' is not an age band such as 18-64 or 75+ (lower <= upper)",
                )
        codes[col] = {str(k): str(v) for k, v in table.items()}

    drop = raw.get("drop") or []
    if not isinstance(drop, list):
        raise ProfileError(path, f"{where}.drop", "expected a list of column names")
    for source in [*columns, *drop]:
        kind = direct_identifier_kind(str(source))
        if kind is not None:
            key = "columns" if source in columns else "drop"
            raise ProfileError(
                path,
                f"{where}.{key}.{source}",
                f"'{source}' is a direct identifier header ({kind}); it cannot be mapped or "
                "dropped: the SMO must remove it, or the profile lists it under "
                "strip_identifiers",
            )
    strip = _strip_identifiers(raw.get("strip_identifiers"), path, where)
    partial = _partial_dates(raw.get("partial_dates", base_partial), path, f"{where}.partial_dates")
    if partial == "first_day":
        for col, fmt in date_formats.items():
            if fmt != ISO_DATE:
                raise ProfileError(
                    path,
                    f"{where}.date_formats.{col}",
                    f"partial_dates: first_day reads ISO 8601 dates only; declare {ISO_DATE}",
                )
    return FeedProfile(
        feed=name,
        file_pattern=pattern,
        scope=scope,
        file=file_opts,
        columns=columns,
        date_formats=date_formats,
        codes=codes,
        constants=constants,
        drop=frozenset(str(d) for d in drop),
        strip_identifiers=strip,
        partial_dates=partial,
        _regex=regex,
    )


def _strip_identifiers(value: Any, path: Path, where: str) -> frozenset[str]:
    """File columns to remove on read: only headers the identifier matcher recognises."""
    where = f"{where}.strip_identifiers"
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ProfileError(path, where, "expected a list of file column names")
    for column in value:
        if direct_identifier_kind(column) is None:
            raise ProfileError(
                path,
                f"{where}.{column}",
                f"'{column}' is not recognised as a direct-identifier header; only identifier "
                "columns can be stripped (list other columns under drop)",
            )
    return frozenset(value)


def load_profile(path: Path | str) -> Profile:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(path, "(file)", "profile not found") from None
    except yaml.YAMLError as exc:
        raise ProfileError(path, "(yaml)", f"not valid YAML: {exc}") from None
    raw = _mapping(raw, path, "(top level)")
    _check_keys(raw, TOP_KEYS, path, "")
    smo_id = raw.get("smo_id")
    if not isinstance(smo_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", smo_id):
        raise ProfileError(path, "smo_id", "required: letters, digits, '-' or '_'")
    version = raw.get("profile_version")
    if version is None:
        raise ProfileError(
            path, "profile_version", "required: bump it whenever the profile changes"
        )
    base_file = _file_options(_mapping(raw.get("file"), path, "file"), FileOptions(), path, "file")
    base_date = raw.get("date_format")
    if base_date is not None:
        base_date = _check_date_format(base_date, path, "date_format")
    base_partial = _partial_dates(raw.get("partial_dates", "reject"), path, "partial_dates")
    feeds_raw = _mapping(raw.get("feeds"), path, "feeds")
    sdtm = None
    if "sdtm" in raw:
        from ingest.sdtm import parse_sdtm_spec

        sdtm = parse_sdtm_spec(
            _mapping(raw["sdtm"], path, "sdtm"), base_file, base_partial, smo_id, path
        )
    if sdtm is not None and smo_id == SPONSOR_ID:
        raise ProfileError(path, "sdtm", f"the {SPONSOR_ID} profile reads sponsor feeds only")
    if not feeds_raw and sdtm is None:
        raise ProfileError(path, "feeds", "required: at least one feed")
    feeds = {
        name: _feed_profile(
            name,
            _mapping(body, path, f"feeds.{name}"),
            base_file,
            base_date,
            smo_id,
            path,
            base_partial,
        )
        for name, body in feeds_raw.items()
    }
    return Profile(
        smo_id=smo_id,
        version=str(version),
        description=str(raw.get("description", "")),
        feeds=feeds,
        path=path,
        sdtm=sdtm,
    )


def load_profiles(directory: Path) -> dict[str, Profile]:
    """Every `*.yaml` profile in a folder, keyed by smo_id (which must be unique)."""
    profiles: dict[str, Profile] = {}
    for path in sorted(Path(directory).glob("*.y*ml")):
        profile = load_profile(path)
        if profile.smo_id in profiles:
            raise ProfileError(
                path,
                "smo_id",
                f"'{profile.smo_id}' is also used by {profiles[profile.smo_id].path}",
            )
        profiles[profile.smo_id] = profile
    return profiles
