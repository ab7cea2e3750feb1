"""A catalogue of malformed SMO deliveries, each built to break exactly one named rule.

Every case starts from a valid delivery of a small synthetic portfolio, written in the SMO's
own dialect, and changes one thing (a value, a column, the bytes, the name). The ingest tests
and the reliability suite share this catalogue, so "what a bad file looks like" is defined once.

    cases = write_catalogue(tmp_path)        # every case, plus the SMO profiles
    case = cases["unknown_site"]; case.path, case.expected_rule, case.roster
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from expectations.contracts import POLARS_TYPES, roster_keys
from expectations.feeds import FEEDS
from synthetic.dialects import Dialect, write_feed
from synthetic.portfolio import Portfolio, Scale, build_portfolio, site_history, snapshot

END = dt.date(2026, 11, 16)
CATALOGUE_SCALE = Scale(smos=4, studies=4, sites=24, subjects=240, registry_peers=0)

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class BadDelivery:
    case: str
    smo_id: str
    path: Path
    expected_rule: str
    description: str
    profile_path: Path
    #: The SMO's (study, site) keys, as the warehouse would hold them for the roster rule.
    roster: frozenset[str]


@dataclass(frozen=True)
class _Case:
    description: str
    expected_rule: str
    smo: str  # dialect name of the SMO that sends it
    feed: str
    change_rows: Callable[[Rows, random.Random], Rows] | None = None
    change_bytes: Callable[[bytes], bytes] | None = None
    change_dialect: Callable[[Dialect], Dialect] | None = None
    file_name: str | None = None
    extra_column: tuple[str, str] | None = None
    drop_column: str | None = None
    #: The delivery date the file is named with (default: the catalogue's END).
    named_date: dt.date | None = None


def _set(column: str, value: Callable[[dict], Any]) -> Callable[[Rows, random.Random], Rows]:
    def change(rows: Rows, rng: random.Random) -> Rows:
        target = rng.choice(rows)
        target[column] = value(target)
        return rows

    return change


def _first_where(predicate: Callable[[dict], bool], **updates: Callable[[dict], Any]):
    def change(rows: Rows, rng: random.Random) -> Rows:
        target = next(r for r in rows if predicate(r))
        for column, value in updates.items():
            target[column] = value(target)
        return rows

    return change


def _duplicate_row(rows: Rows, rng: random.Random) -> Rows:
    return [*rows, dict(rng.choice(rows))]


def _truncate(data: bytes) -> bytes:
    return data[: len(data) - 7]


def _junk(_: bytes) -> bytes:
    return bytes(random.Random(0).randrange(256) for _ in range(4096))


def _header_only(data: bytes) -> bytes:
    return data.split(b"\r\n", 1)[0] + b"\r\n"


def _drop_last_field(data: bytes, delimiter: bytes) -> bytes:
    lines = data.split(b"\r\n")
    lines[2] = lines[2].rsplit(delimiter, 1)[0]
    return b"\r\n".join(lines)


def _extra_field(data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    lines[2] += b",surplus"
    return b"\r\n".join(lines)


def edit_field(
    delimiter: str, encoding: str, column: int, change: Callable[[str], str], line: int = 2
) -> Callable[[bytes], bytes]:
    """Change one field of one line (0 = header) of a CSV delivery, byte-exactly elsewhere."""

    def edit(data: bytes) -> bytes:
        text = data.decode(encoding)
        bom = text[:1] if text.startswith("\ufeff") else ""
        lines = text[len(bom) :].split("\r\n")
        fields = lines[line].split(delimiter)
        fields[column] = change(fields[column])
        lines[line] = delimiter.join(fields)
        out = (bom + "\r\n".join(lines)).encode(encoding)
        # Python's UTF-16 codec writes a byte-order mark of its own: keep just one.
        return out.replace("\ufeff".encode(encoding), b"", 1) if encoding == "utf-16" else out

    return edit


def edit_sheet(change: Callable[[str], str]) -> Callable[[bytes], bytes]:
    """Change the XML of the first worksheet of an XLSX delivery."""

    def edit(data: bytes) -> bytes:
        source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
        with source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for item in source.infolist():
                content = source.read(item.filename)
                if item.filename == "xl/worksheets/sheet1.xml":
                    content = change(content.decode("utf-8")).encode("utf-8")
                target.writestr(item, content)
        return out.getvalue()

    return edit


def replace_cell(column: str, cell: Callable[[str], str], first_row: int = 5):
    """Sheet XML change: the first cell of `column` at or below `first_row` becomes
    `cell(ref)` (its whole `<c>` element)."""

    def change(xml: str) -> str:
        for m in re.finditer(rf'<c r="({column}(\d+))"[^>]*?(?:/>|>.*?</c>)', xml):
            if int(m.group(2)) >= first_row:
                return xml[: m.start()] + cell(m.group(1)) + xml[m.end() :]
        raise ValueError(f"no cell in column {column} from row {first_row}")

    return change


DAY = dt.timedelta(days=1)
CASES: dict[str, _Case] = {
    "wrong_delimiter": _Case(
        "Semicolon SMO sends a comma-separated file",
        "file.delimiter",
        "iberia",
        "subjects",
        change_dialect=lambda d: dataclasses.replace(d, delimiter=","),
    ),
    "wrong_encoding": _Case(
        "UTF-8 SMO sends a cp1252 file with accented names",
        "file.encoding",
        "americas",
        "sites",
        change_rows=_set("site_name", lambda r: "Clínica São José"),
        change_dialect=lambda d: dataclasses.replace(d, encoding="cp1252"),
    ),
    "utf16_instead_of_cp1252": _Case(
        "cp1252 SMO sends UTF-16 text",
        "file.encoding",
        "iberia",
        "sites",
        change_dialect=lambda d: dataclasses.replace(d, encoding="utf-16"),
    ),
    "binary_junk": _Case(
        "Random bytes under a delivery name",
        "file.encoding",
        "americas",
        "subjects",
        change_bytes=_junk,
    ),
    "empty_file": _Case(
        "A 0-byte file", "file.empty", "iberia", "visits", change_bytes=lambda _: b""
    ),
    "header_only": _Case(
        "Only the header line", "file.no_rows", "americas", "visits", change_bytes=_header_only
    ),
    "truncated_last_line": _Case(
        "The file was cut off mid-line while being written",
        "file.truncated",
        "iberia",
        "visits",
        change_bytes=_truncate,
    ),
    "extra_field": _Case(
        "A row has one field too many",
        "file.ragged_row",
        "americas",
        "subjects",
        change_bytes=_extra_field,
    ),
    "missing_field": _Case(
        "A row has one field too few (read before as an empty last column)",
        "file.ragged_row",
        "americas",
        "subjects",
        change_bytes=lambda b: _drop_last_field(b, b","),
    ),
    "stray_quote": _Case(
        "Unbalanced quotes in free-text cells (merged rows 2 to 4 into one record before)",
        "file.quoting",
        "iberia",
        "deviations",
        change_bytes=lambda b: edit_field(";", "cp1252", 5, lambda v: v + '"', line=4)(
            edit_field(";", "cp1252", 5, lambda v: '"' + v, line=2)(b)
        ),
    ),
    "decimal_point_in_comma_file": _Case(
        "3440.03 in a decimal-comma file (read as 344003 before)",
        "value.type",
        "iberia",
        "payments",
        change_bytes=edit_field(";", "cp1252", 4, lambda v: v.replace(",", ".")),
    ),
    "nul_in_cp1252_field": _Case(
        "A NUL byte inside a field of a cp1252 file (stored before)",
        "value.control_character",
        "iberia",
        "subjects",
        change_bytes=edit_field(";", "cp1252", 2, lambda v: v[:3] + "\x00" + v[3:]),
    ),
    "infinite_amount": _Case(
        "Infinity as an amount (accepted as a number before)",
        "value.type",
        "americas",
        "payments",
        change_bytes=edit_field(",", "utf-8", 3, lambda v: "Infinity"),
    ),
    "two_digit_year": _Case(
        "A two-digit year under %d/%m/%Y (read as the year 25 before)",
        "value.type",
        "iberia",
        "sites",
        change_rows=_first_where(
            lambda r: r["selected_date"] is not None,
            selected_date=lambda r: r["selected_date"].strftime("%d/%m/%y"),
        ),
    ),
    "xlsx_error_cell": _Case(
        "An #N/A error cell in a workbook (read as empty before)",
        "value.error_cell",
        "nordic",
        "payments",
        change_bytes=edit_sheet(
            replace_cell("G", lambda ref: f'<c r="{ref}" t="e"><v>#N/A</v></c>')
        ),
    ),
    "xlsx_formula_without_value": _Case(
        "A formula saved without a computed value (read as 0 before)",
        "value.formula_without_value",
        "nordic",
        "payments",
        change_bytes=edit_sheet(
            replace_cell("E", lambda ref: f'<c r="{ref}"><f>E4*2</f><v>0</v></c>')
        ),
    ),
    "excel_serial_out_of_range": _Case(
        "An Excel serial day past 9999-12-31 (a traceback in the gate before)",
        "value.type",
        "nordic",
        "visits",
        change_bytes=edit_sheet(replace_cell("H", lambda ref: f'<c r="{ref}"><v>2958466</v></c>')),
    ),
    "wrong_xlsx_sheet": _Case(
        "Workbook sheet renamed",
        "file.sheet_missing",
        "nordic",
        "subjects",
        change_dialect=lambda d: dataclasses.replace(
            d,
            feeds={**d.feeds, "subjects": dataclasses.replace(d.feeds["subjects"], sheet="Sheet1")},
        ),
    ),
    "corrupt_xlsx": _Case(
        "A workbook cut short",
        "file.unreadable",
        "nordic",
        "visits",
        change_bytes=lambda b: b[: len(b) // 2],
    ),
    "unrecognized_name": _Case(
        "A file name no pattern matches",
        "file.name_unrecognized",
        "americas",
        "subjects",
        file_name="subjects_export_FINAL_v2.csv",
    ),
    "missing_required_column": _Case(
        "The screening date column is missing",
        "column.missing",
        "iberia",
        "subjects",
        drop_column="screened_date",
    ),
    "unmapped_column": _Case(
        "A new column the profile does not know",
        "column.unmapped",
        "americas",
        "visits",
        extra_column=("Monitor Comments", "ok"),
    ),
    "direct_identifier_column": _Case(
        "Patient initials included",
        "column.direct_identifier",
        "americas",
        "subjects",
        extra_column=("Patient Initials", "J.D."),
    ),
    "duplicate_keys": _Case(
        "A subject listed twice", "key.unique", "iberia", "subjects", change_rows=_duplicate_row
    ),
    "date_order_broken": _Case(
        "Randomized before screening",
        "order.screened_le_randomized",
        "iberia",
        "subjects",
        change_rows=_first_where(
            lambda r: r["randomized_date"] is not None,
            randomized_date=lambda r: r["screened_date"] - 5 * DAY,
            consent_date=lambda r: r["screened_date"] - 9 * DAY,
        ),
    ),
    "screen_failed_and_randomized": _Case(
        "Screen-failed and randomized",
        "exclusive.screen_failed_randomized",
        "sakura",
        "subjects",
        change_rows=_first_where(
            lambda r: r["randomized_date"] is not None,
            screen_failed_date=lambda r: r["screened_date"],
        ),
    ),
    "crf_entry_before_visit": _Case(
        "eCRF entered before the visit",
        "order.actual_le_crf_entry",
        "americas",
        "visits",
        change_rows=_first_where(
            lambda r: r["crf_entry_date"] is not None,
            crf_entry_date=lambda r: r["actual_date"] - 3 * DAY,
        ),
    ),
    "reported_before_identified": _Case(
        "Deviation reported before it was identified",
        "order.identified_le_reported",
        "iberia",
        "deviations",
        change_rows=_first_where(
            lambda r: r["reported_date"] is not None,
            reported_date=lambda r: r["identified_date"] - 2 * DAY,
        ),
    ),
    "unknown_site": _Case(
        "A subject at a site missing from the roster",
        "roster.site_known",
        "nordic",
        "subjects",
        change_rows=_set("site_id", lambda r: "NO-9999"),
    ),
    "future_dates": _Case(
        "A visit dated after the delivery",
        "date.not_after_delivery",
        "sakura",
        "visits",
        change_rows=_first_where(
            lambda r: r["actual_date"] is not None,
            actual_date=lambda r: END + 10 * DAY,
            crf_entry_date=lambda r: END + 12 * DAY,
        ),
    ),
    "negative_amounts": _Case(
        "A negative amount that is not a credit note",
        "amount.non_negative",
        "iberia",
        "payments",
        change_rows=_set("amount", lambda r: -150.0),
    ),
    "paid_before_trigger": _Case(
        "Paid before the earning event",
        "order.trigger_le_paid",
        "americas",
        "payments",
        change_rows=_first_where(
            lambda r: r["paid_date"] is not None, paid_date=lambda r: r["trigger_date"] - 1 * DAY
        ),
    ),
    "unknown_code": _Case(
        "A site status outside the code list",
        "value.enum",
        "iberia",
        "sites",
        change_rows=_set("status", lambda r: "Suspendido"),
    ),
    "unmapped_sex_label": _Case(
        "A subject's sex in a label the SMO's profile does not map (never guessed)",
        "value.enum",
        "americas",
        "subjects",
        change_rows=_set("sex", lambda r: "Woman"),
    ),
    "bad_date_format": _Case(
        "A month-first date in a day-first file",
        "value.type",
        "iberia",
        "subjects",
        change_rows=_set("screened_date", lambda r: "12/31/2026"),
    ),
    "bad_country": _Case(
        "Country as a name, not an ISO code",
        "value.country_iso",
        "nordic",
        "sites",
        change_rows=_set("country", lambda r: "Sweden"),
    ),
    "bad_currency": _Case(
        "Currency not in ISO 4217",
        "value.currency_iso",
        "americas",
        "payments",
        change_rows=_set("currency", lambda r: "DOLLARS"),
    ),
}


# Values each file's own contract would allow but the warehouse could not use: the gate's
# plausibility rules refuse them per file, so no single delivery can fail a warehouse test.
CASES.update(
    {
        "negative_target": _Case(
            "A site's enrollment target below zero",
            "value.non_negative",
            "nordic",
            "sites",
            change_rows=_set("target_enrollment", lambda r: -5),
        ),
        "currency_without_fx_rate": _Case(
            "A valid ISO currency the FX seed has no rate for",
            "fx.rate_missing",
            "americas",
            "payments",
            change_rows=_set("currency", lambda r: "ISK"),
        ),
        "payment_earned_in_1900": _Case(
            "A payment line earned in 1900 (a default date left in the export)",
            "date.before_window",
            "iberia",
            "payments",
            change_rows=_first_where(
                lambda r: r["trigger_date"] is not None,
                trigger_date=lambda r: dt.date(1900, 1, 1),
            ),
        ),
        "visit_in_1999": _Case(
            "A visit dated before any plausible study window",
            "date.before_window",
            "sakura",
            "visits",
            change_rows=_first_where(
                lambda r: r["actual_date"] is not None and r["crf_entry_date"] is not None,
                actual_date=lambda r: dt.date(1999, 3, 1),
                crf_entry_date=lambda r: dt.date(1999, 3, 2),
            ),
        ),
        "delivery_dated_decades_ahead": _Case(
            "A file named with a delivery date 36 years after it arrived",
            "file.delivery_date_future",
            "americas",
            "sites",
            named_date=dt.date(2062, 11, 16),
        ),
        "selected_after_activation": _Case(
            "A site selected after it was activated",
            "order.selected_le_activation",
            "iberia",
            "sites",
            change_rows=_first_where(
                lambda r: r["activation_date"] is not None and r["selected_date"] is not None,
                selected_date=lambda r: r["activation_date"] + 30 * DAY,
                irb_approval_date=lambda r: r["activation_date"] + 31 * DAY,
                contract_executed_date=lambda r: r["activation_date"] + 31 * DAY,
            ),
        ),
    }
)


class _Base:
    """The small valid portfolio every case starts from."""

    def __init__(self, seed: int):
        self.portfolio: Portfolio = build_portfolio(seed, CATALOGUE_SCALE, weeks=1, end=END)
        self.histories = [site_history(self.portfolio, s) for s in self.portfolio.sites]

    def smo_for(self, dialect: str):
        return next(s for s in self.portfolio.smos if s.dialect.name == dialect)

    def rows(self, smo_id: str, feed: str) -> tuple[str, Rows]:
        """The SMO's rows of the first study that has any, and that study's id."""
        by_study: dict[str, Rows] = {}
        for h in self.histories:
            if h.site.smo_id == smo_id:
                by_study.setdefault(h.site.study_id, []).extend(
                    snapshot(h, feed, END, edited=False)
                )
        study_id, rows = next((k, v) for k, v in sorted(by_study.items()) if v)
        return study_id, [dict(r) for r in rows]

    def loaded(self, smo_id: str, feed: str) -> pl.DataFrame:
        """What the gate must load from the valid delivery `write_valid_deliveries` writes for
        (smo_id, feed): every canonical column, typed, in the file's row order. Columns the
        SMO's dialect does not write are null (the study of a per-study file comes from its
        name); text amounts are written with two decimals."""
        dialect = self.smo_for_id(smo_id).dialect
        fd = dialect.feeds[feed]
        study_id, rows = self.rows(smo_id, feed)
        spec = FEEDS[feed]
        data: dict[str, list[Any]] = {}
        for col in spec.columns:
            if col.name in fd.headers:
                values = [r.get(col.name) for r in rows]
                if col.dtype == "float" and dialect.file_type == "csv":
                    values = [None if v is None else round(v, 2) for v in values]
                if col.dtype == "str":
                    values = [None if v in (None, "") else str(v) for v in values]
            elif col.name == "smo_id":
                values = [smo_id] * len(rows)
            elif col.name == "study_id" and fd.per_study_file:
                values = [study_id] * len(rows)
            else:
                values = [None] * len(rows)
            data[col.name] = values
        schema = {c.name: POLARS_TYPES[c.dtype] for c in spec.columns}
        return pl.DataFrame(data, schema=schema)

    def smo_for_id(self, smo_id: str):
        return next(s for s in self.portfolio.smos if s.smo_id == smo_id)

    def roster(self, smo_id: str) -> frozenset[str]:
        sites = [s for s in self.portfolio.sites if s.smo_id == smo_id]
        return roster_keys([s.study_id for s in sites], [s.site_id for s in sites])


def _write_case(base: _Base, name: str, case: _Case, out: Path, profiles: Path) -> BadDelivery:
    smo = base.smo_for(case.smo)
    dialect = smo.dialect
    study_id, rows = base.rows(smo.smo_id, case.feed)
    if case.change_rows:
        rows = case.change_rows(rows, random.Random(name))
    if case.change_dialect:
        dialect = case.change_dialect(dialect)
    feed_dialect = dialect.feeds[case.feed]
    if case.extra_column or case.drop_column:
        headers = {c: h for c, h in feed_dialect.headers.items() if c != case.drop_column}
        extras = dict(feed_dialect.extra_columns)
        if case.extra_column:
            extras[case.extra_column[0]] = case.extra_column[1]
        feed_dialect = dataclasses.replace(feed_dialect, headers=headers, extra_columns=extras)
        dialect = dataclasses.replace(dialect, feeds={**dialect.feeds, case.feed: feed_dialect})
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    file_name = case.file_name or smo.dialect.file_name(case.feed, case.named_date or END, study_id)
    path = write_feed(dialect, case.feed, folder / file_name, _renderable(rows), title=name)
    if case.change_bytes:
        path.write_bytes(case.change_bytes(path.read_bytes()))
    return BadDelivery(
        case=name,
        smo_id=smo.smo_id,
        path=path,
        expected_rule=case.expected_rule,
        description=case.description,
        profile_path=profiles / f"{smo.smo_id}.yaml",
        roster=base.roster(smo.smo_id),
    )


def _renderable(rows: Rows) -> Rows:
    """Values a case sets as raw text (e.g. a wrongly formatted date) are written verbatim."""
    return [
        {k: _Verbatim(v) if isinstance(v, str) and k.endswith("_date") else v for k, v in r.items()}
        for r in rows
    ]


class _Verbatim(str):
    """A string standing where a date is expected: the dialect writes it unchanged."""

    def strftime(self, _fmt: str) -> str:
        return str(self)


def write_catalogue(
    out: Path, *, seed: int = 7, cases: list[str] | None = None
) -> dict[str, BadDelivery]:
    """Write every (or the named) case under `out/<case>/`, and the profiles under `out/profiles`."""
    out = Path(out)
    base = _Base(seed)
    profiles = out / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    for smo in base.portfolio.smos:
        profile = smo.dialect.profile(smo.smo_id)
        (profiles / f"{smo.smo_id}.yaml").write_text(
            yaml.safe_dump(profile, allow_unicode=True, sort_keys=False)
        )
    names = cases or list(CASES)
    return {name: _write_case(base, name, CASES[name], out, profiles) for name in names}


def write_valid_deliveries(out: Path, *, seed: int = 7) -> dict[str, dict[str, Path]]:
    """The catalogue's base deliveries, unchanged (every one is valid): {smo_id: {feed: path}}."""
    out = Path(out)
    base = _Base(seed)
    written: dict[str, dict[str, Path]] = {}
    for smo in base.portfolio.smos:
        for feed in smo.feeds:
            study_id, rows = base.rows(smo.smo_id, feed)
            path = out / smo.smo_id / smo.dialect.file_name(feed, END, study_id)
            written.setdefault(smo.smo_id, {})[feed] = write_feed(
                smo.dialect, feed, path, rows, title=feed
            )
    return written
