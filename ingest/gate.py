"""The delivery gate: one SMO file -> a typed canonical frame, or every reason it is refused.

Steps: match the file to a feed by name, read it as text, map headers (profile), check the
header, map codes, parse dates and numbers with the declared formats, then validate the
contract (pandera). A file is accepted only with zero problems; there is no partial load.
The same function serves the pipeline and `smo-oversight check-delivery`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import re
from pathlib import Path

import polars as pl

from expectations.contracts import FAILURE_SCHEMA, RULES, Plausibility, feed_schema, validate
from expectations.feeds import FEEDS, PRECISION_SUFFIX, Feed
from expectations.identifiers import direct_identifier_kind
from ingest.gate_result import GateResult, Problem, RuleTotal, file_sha256
from ingest.plausibility import plausibility as default_plausibility
from ingest.profiles import (
    EXCEL_SERIAL,
    EXCEL_SERIAL_MAX,
    ISO_DATE,
    FeedProfile,
    FileOptions,
    Profile,
    date_format_regex,
    regex_literal,
)
from ingest.readers import DeliveryFileError, RawFrame, read_delivery

log = logging.getLogger(__name__)

#: Examples kept per (rule, column) in a report; totals are always complete.
EXAMPLES_PER_RULE = 20
EXCEL_EPOCH = dt.date(1899, 12, 30)  # serial 61 is 1900-03-01 (Excel counts a 1900-02-29)
EXCEL_EPOCH_1904 = dt.date(1904, 1, 1)
#: A file may be named with tomorrow's date (time zones); anything later is a wrong name.
DELIVERY_DATE_GRACE = dt.timedelta(days=1)
TRUE_WORDS = ("true", "yes", "y", "1", "si", "sí", "oui", "ja", "是", "はい")
FALSE_WORDS = ("false", "no", "n", "0", "non", "nein", "否", "いいえ")


def _never_raises(check):
    """An exception nobody foresaw inside the gate rejects the file (`file.unreadable`, with the
    exception's type and text) instead of stopping the run; the traceback goes to the log."""

    @functools.wraps(check)
    def guarded(path, profile, *args, **kwargs):
        try:
            return check(path, profile, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the point: no file may stop the run
            log.exception("delivery gate failed on %s", path)
            return _unforeseen(Path(path), profile, kwargs.get("sha256"), exc)

    return guarded


def _unforeseen(path: Path, profile: Profile, sha256: str | None, exc: Exception) -> GateResult:
    def attempt(get, default):
        try:
            return get()
        except Exception:  # noqa: BLE001
            return default

    result = GateResult(
        path=path,
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256=sha256 or attempt(lambda: file_sha256(path), ""),
        size_bytes=attempt(lambda: path.stat().st_size, 0),
    )
    matched = attempt(lambda: profile.feed_for(path.name), None)
    if matched is not None:
        result.feed, result.study_id = matched[0].feed, matched[1].get("study_id")
    result.add(unforeseen_problem("The gate could not check this file", exc))
    return result


def unforeseen_problem(what: str, exc: BaseException) -> Problem:
    """The rejection for an exception nobody foresaw (`file.unreadable`, quoting it)."""
    detail = str(exc).splitlines()[0] if str(exc) else "no detail"
    return Problem(
        "file.unreadable",
        f"{what} ({type(exc).__name__}: {detail}); it is rejected rather than loaded unchecked. "
        "Report this to the pipeline's engineers.",
    )


@_never_raises
def check_delivery(
    path: Path,
    profile: Profile,
    *,
    received_at: dt.datetime,
    roster: frozenset[str] | None,
    sha256: str | None = None,
    plausibility: Plausibility | None = None,
) -> GateResult:
    """Apply the SMO's profile and the feed contract to one file.

    `roster` holds the SMO's current (study, site) keys (`expectations.contracts.roster_keys`),
    including rosters accepted earlier in the same batch; None skips the site reference rule.
    `plausibility` is the date window and FX context (`ingest.plausibility`); None means the
    settings' window without study starts.
    """
    path = Path(path)
    result = GateResult(
        path=path,
        smo_id=profile.smo_id,
        profile_version=profile.version,
        sha256=sha256 or file_sha256(path),
        size_bytes=path.stat().st_size,
    )
    matched = profile.feed_for(path.name)
    if matched is None:
        patterns = ", ".join(f"{f.feed}: {f.file_pattern}" for f in profile.feeds.values())
        sdtm = (
            f" The profile also reads CDISC SDTM domain files ({profile.sdtm.file_pattern}, "
            "or any file with a DOMAIN column), and this file is not one either."
            if profile.sdtm is not None
            else ""
        )
        result.add(
            Problem(
                "file.name_unrecognized",
                f"'{path.name}' matches no file pattern of profile {profile.smo_id} ({patterns})."
                + sdtm,
            )
        )
        return result
    feed_profile, fields = matched
    feed = FEEDS[feed_profile.feed]
    result.feed = feed.name
    result.study_id = fields.get("study_id")
    try:
        file_date = profile.parse_delivery_date(feed_profile, fields)
    except ValueError:
        result.add(
            Problem(
                "file.name_unrecognized",
                f"The delivery date in '{path.name}' is not a real date "
                f"(pattern {feed_profile.file_pattern}).",
            )
        )
        return result
    result.delivery_date = file_date or received_at.date()
    if file_date is not None and file_date > received_at.date() + DELIVERY_DATE_GRACE:
        result.add(
            Problem(
                "file.delivery_date_future",
                f"The delivery date in '{path.name}' ({file_date}) is after the file arrived "
                f"({received_at.date()}); a snapshot cannot be dated in the future. Check the "
                "date in the file name.",
                value=str(file_date),
            )
        )
        return result

    try:
        raw = read_delivery(path, feed_profile.file)
    except DeliveryFileError as exc:
        for finding in exc.findings:
            result.problems.append(
                Problem(finding.rule, finding.message, finding.column, finding.row, finding.value)
            )
        result.totals.extend(RuleTotal(rule, None, count) for rule, count in exc.totals.items())
        return result
    except Exception as exc:  # noqa: BLE001 - a reader library failing on a file we did not foresee
        result.add(
            Problem(
                "file.unreadable",
                f"The file could not be read as {feed_profile.file.type} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}).",
            )
        )
        return result
    result.row_count = raw.frame.height
    raw = _null_values(raw, feed_profile.file)
    raw = _strip_identifiers(raw, feed_profile, result)
    return check_rows(raw, feed_profile, result, roster=roster, plausibility=plausibility)


def check_rows(
    raw: RawFrame,
    feed_profile: FeedProfile,
    result: GateResult,
    *,
    roster: frozenset[str] | None,
    plausibility: Plausibility | None = None,
) -> GateResult:
    """The gate after reading: header, codes, parsing and the feed contract, into `result`.

    Shared by `check_delivery` (one file) and the SDTM adapter (`ingest.sdtm`), which builds
    the text rows of a canonical feed from several domain files.
    """
    feed = FEEDS[feed_profile.feed]
    unread = _record_unread_cells(raw, feed_profile, feed, result)

    renames = _check_header(raw, feed_profile, feed, result)
    if renames is None:
        return result
    typed, parse_failures = _to_canonical(raw, renames, feed_profile, feed, result.study_id)
    # A cell the reader could not read as written is reported once, as what it is.
    parse_failures = parse_failures.join(unread, on=["column", "row_index"], how="anti")
    failures = [parse_failures]
    if result.study_id is not None and "study_id" in renames.values():
        failures.append(_study_mismatch(typed, result.study_id))
    schema = feed_schema(
        feed,
        delivery_date=result.delivery_date,
        roster=roster,
        plausibility=plausibility or default_plausibility(),
    )
    contract_failures = validate(typed, schema)
    # A value that did not parse is reported once (as value.type), not again as missing.
    contract_failures = contract_failures.join(
        pl.concat([parse_failures.select("column", "row_index"), unread]),
        on=["column", "row_index"],
        how="anti",
    )
    failures.append(contract_failures)
    _record_failures(pl.concat(failures), raw, renames, typed, feed_profile, result)
    if result.accepted:
        result.frame = typed.with_columns(raw.row_numbers().alias("_source_row"))
        if feed.per_study:
            result.studies = sorted(typed.get_column("study_id").unique().to_list())
    return result


def _null_values(raw: RawFrame, opts: FileOptions) -> RawFrame:
    """The profile's missing-value tokens (`null_values`, compared trimmed) become empty cells."""
    if not opts.null_values:
        return raw
    tokens = pl.Series(opts.null_values, dtype=pl.Utf8)
    frame = raw.frame.with_columns(
        pl.when(pl.col(c).str.strip_chars().is_in(tokens).not_()).then(pl.col(c)).alias(c)
        for c in raw.frame.columns
    )
    return dataclasses.replace(raw, frame=frame)


def _strip_identifiers(raw: RawFrame, feed_profile: FeedProfile, result: GateResult) -> RawFrame:
    """Drop the identifier columns the profile strips, before any check reads the frame."""
    result.file_columns = list(raw.frame.columns)
    present = [c for c in raw.frame.columns if c in feed_profile.strip_identifiers]
    if not present:
        return raw
    result.stripped_columns = present
    cells = raw.cells
    if cells is not None:  # what the reader found in a stripped column goes with it
        cells = cells.filter(~pl.col("column").is_in(present))
    return dataclasses.replace(raw, frame=raw.frame.drop(present), cells=cells)


def _check_header(
    raw: RawFrame, feed_profile: FeedProfile, feed: Feed, result: GateResult
) -> dict[str, str] | None:
    """Source column -> canonical column, or None when the header makes values unreadable."""
    renames: dict[str, str] = {}
    for source in raw.frame.columns:
        kind = direct_identifier_kind(source)
        if kind is not None:
            result.add(
                Problem(
                    "column.direct_identifier",
                    f"Column '{source}' looks like a direct identifier ({kind}): remove this "
                    "column from the export (deliveries carry study pseudonyms only). If the "
                    "sponsor agrees to receive and discard it, the profile can list it under "
                    "strip_identifiers.",
                    column=source,
                )
            )
            continue
        target = feed_profile.columns.get(source)
        if target is None and source in feed.column_names:
            target = source  # already canonical
        if target is None:
            if source not in feed_profile.drop:
                result.add(
                    Problem(
                        "column.unmapped",
                        f"Column '{source}' is not mapped to a {feed.name} column and not listed "
                        "under drop in the profile.",
                        column=source,
                    )
                )
            continue
        if target in renames.values():
            first = next(s for s, t in renames.items() if t == target)
            result.add(
                Problem(
                    "column.duplicate",
                    f"Columns '{first}' and '{source}' both map to '{target}'.",
                    column=source,
                )
            )
            continue
        renames[source] = target
    present = set(renames.values()) | set(feed_profile.constants)
    if result.study_id is not None:
        present.add("study_id")
    missing = [c for c in feed.required if c not in present]
    for column in missing:
        sources = [s for s, t in feed_profile.columns.items() if t == column]
        expected = f" (the profile expects '{sources[0]}')" if sources else ""
        result.add(
            Problem(
                "column.missing",
                f"Required column '{column}' is not in the file{expected}. "
                f"File columns: {raw.frame.columns}.",
                column=column,
            )
        )
    return None if missing else renames


def number_regex(opts: FileOptions, dtype: str) -> str:
    """The regex (Rust syntax) a number must match in full, per the profile's separators.

    CSV numbers use the declared decimal separator and, if declared, thousands groups of
    exactly three digits; no exponent, no `inf`/`nan`. XLSX and XPORT numbers come from numeric
    cells, rendered by the reader in full digits with a '.' (a whole number may read as `12.0`);
    text in the form of another number (`1e3`, `3,50`) is refused there too.
    """
    if opts.type != "csv":
        if dtype == "int":
            return r"^[+-]?[0-9]+(?:\.0+)?$"
        if opts.type == "xport":  # SAS floats, written by polars (1e-7 keeps its exponent)
            return r"^[+-]?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?$"
        return r"^[+-]?[0-9]+(?:\.[0-9]+)?$"
    digits = "[0-9]+"
    if opts.thousands:
        digits = f"(?:[0-9]{{1,3}}(?:{regex_literal(opts.thousands)}[0-9]{{3}})+|[0-9]+)"
    if dtype == "int":
        return f"^[+-]?{digits}$"
    return f"^[+-]?{digits}(?:{regex_literal(opts.decimal)}[0-9]+)?$"


def _parse(
    expr: pl.Expr, dtype: str, feed_profile: FeedProfile, column: str, date1904: bool = False
) -> pl.Expr:
    """Text -> typed value, null where the text is not exactly in the declared format."""
    opts = feed_profile.file
    if dtype == "date":
        fmt = feed_profile.date_formats[column]
        if fmt == EXCEL_SERIAL:
            # Whole day numbers only (a fraction is a time of day), within Excel's calendar.
            days = expr.str.replace(r"\.0+$", "").str.to_integer(strict=False)
            whole = expr.str.contains(
                number_regex(opts, "int") if opts.type != "csv" else r"^[0-9]+$"
            )
            if date1904:
                date = pl.lit(EXCEL_EPOCH_1904) + pl.duration(days=days)
                valid = whole & days.is_between(0, EXCEL_SERIAL_MAX[True])
            else:
                # Excel's 1900 system counts a 29 February 1900 (serial 60) that never was.
                offset = pl.when(days < 60).then(days + 1).otherwise(days)
                date = pl.lit(EXCEL_EPOCH) + pl.duration(days=offset)
                valid = whole & days.is_between(1, EXCEL_SERIAL_MAX[False]) & (days != 60)
            return pl.when(valid).then(date.cast(pl.Date))
        if fmt == ISO_DATE and feed_profile.partial_dates == "first_day":
            expr = (
                pl.when(expr.str.contains(_ISO_YEAR))
                .then(expr + "-01-01")
                .when(expr.str.contains(_ISO_MONTH))
                .then(expr + "-01")
                .otherwise(expr)
            )
        parsed = expr.str.to_date(fmt, strict=False)
        exact = expr.str.contains(date_format_regex(fmt))
        return pl.when(exact & (parsed >= dt.date(1, 1, 1))).then(parsed)
    if dtype in ("int", "float"):
        exact = expr.str.contains(number_regex(opts, dtype))
        text = expr
        if opts.type == "csv" and opts.thousands:
            text = text.str.replace_all(opts.thousands, "", literal=True)
        if dtype == "int":
            value = text.str.replace(r"\.0+$", "").str.to_integer(strict=False)
        else:
            if opts.type == "csv" and opts.decimal != ".":
                text = text.str.replace(opts.decimal, ".", literal=True)
            value = text.cast(pl.Float64, strict=False)
        return pl.when(exact).then(value)
    if dtype == "bool":
        lowered = expr.str.to_lowercase()
        return (
            pl.when(lowered.is_in(TRUE_WORDS))
            .then(True)
            .when(lowered.is_in(FALSE_WORDS))
            .then(False)
            .otherwise(None)
        )
    return expr


_ISO_YEAR = r"^[0-9]{4}$"
_ISO_MONTH = r"^[0-9]{4}-[0-9]{2}$"


def _precision(text: pl.Expr) -> pl.Expr:
    """How much of an ISO 8601 date was given: day, month or year (null when none or invalid)."""
    return (
        pl.when(text.str.contains(date_format_regex(ISO_DATE)))
        .then(pl.lit("day"))
        .when(text.str.contains(_ISO_MONTH))
        .then(pl.lit("month"))
        .when(text.str.contains(_ISO_YEAR))
        .then(pl.lit("year"))
    )


def _to_canonical(
    raw: RawFrame,
    renames: dict[str, str],
    feed_profile: FeedProfile,
    feed: Feed,
    file_study: str | None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The typed canonical frame, plus one failure row per value that did not parse.

    One lazy polars pass strips whitespace, maps codes, parses, and flags unparseable values
    (the parse is shared between the value and its flag by common-subexpression elimination).
    """
    source_of = {target: source for source, target in renames.items()}
    padded = _padded_columns(raw.frame, list(source_of.values()))
    exprs, present = [], []
    for col in feed.columns:
        if col.name in source_of:
            source = pl.col(source_of[col.name])
            text = source
            if source_of[col.name] in padded:  # trimming costs a pass: only where needed
                stripped = source.str.strip_chars()
                text = pl.when(stripped.str.len_bytes() > 0).then(stripped)  # blank = missing
            codes = feed_profile.codes.get(col.name)
            if codes:
                text = text.replace_strict(codes, default=text, return_dtype=pl.Utf8)
            if col.dtype != "str":
                present.append(col.name)
                exprs.append(text.is_not_null().alias(f"{_FLAG}{col.name}"))
            if col.dtype == "date" and feed_profile.partial_dates == "first_day":
                exprs.append(_precision(text).alias(f"{col.name}{PRECISION_SUFFIX}"))
        elif col.name in feed_profile.constants:
            text = pl.lit(feed_profile.constants[col.name], dtype=pl.Utf8)
        elif col.name == "study_id" and file_study is not None:
            text = pl.lit(file_study, dtype=pl.Utf8)
        else:
            text = pl.lit(None, dtype=pl.Utf8)
        exprs.append(_parse(text, col.dtype, feed_profile, col.name, raw.date1904).alias(col.name))
    both = raw.frame.lazy().select(exprs).collect()
    # A value is unparsed where the cell had text but the typed column is null.
    both = both.with_columns(
        (pl.col(f"{_FLAG}{c}") & pl.col(c).is_null()).alias(f"{_FLAG}{c}") for c in present
    )
    precision = [c for c in both.columns if c.endswith(PRECISION_SUFFIX)]
    # A precision is kept only beside a date that parsed.
    typed = both.select(
        *feed.column_names,
        *(
            pl.when(pl.col(c.removesuffix(PRECISION_SUFFIX)).is_not_null()).then(pl.col(c)).alias(c)
            for c in precision
        ),
    )
    flag_columns = [c for c in both.columns if c.startswith(_FLAG)]
    if not flag_columns or not both.select(pl.any_horizontal(flag_columns).any()).item():
        return typed, pl.DataFrame(schema=FAILURE_SCHEMA)
    failed = (
        both.select(flag_columns)
        .with_row_index("row_index")
        .unpivot(index="row_index", variable_name="column", value_name="failed")
        .filter(pl.col("failed"))
        .select(
            pl.lit("value.type").alias("rule"),
            pl.col("column").str.strip_prefix(_FLAG),
            pl.col("row_index").cast(pl.Int64),
        )
    )
    return typed, failed


_FLAG = "__unparsed__"


def _padded_columns(frame: pl.DataFrame, columns: list[str]) -> set[str]:
    """Columns with any value that starts or ends with whitespace (one cheap pass)."""
    if not columns:
        return set()
    checks = (
        frame.lazy()
        .select(
            pl.any_horizontal(
                pl.col(c).str.starts_with(ws) | pl.col(c).str.ends_with(ws) for ws in (" ", "\t")
            )
            .any()
            .alias(c)
            for c in columns
        )
        .collect()
    )
    return {c for c in columns if checks[0, c]}


def _study_mismatch(typed: pl.DataFrame, study_id: str) -> pl.DataFrame:
    return (
        typed.select((pl.col("study_id") != study_id).alias("bad"))
        .with_row_index("row_index")
        .filter(pl.col("bad"))
        .select(
            pl.lit("file.study_mismatch").alias("rule"),
            pl.lit("study_id").alias("column"),
            pl.col("row_index").cast(pl.Int64),
        )
    )


def _record_unread_cells(
    raw: RawFrame, feed_profile: FeedProfile, feed: Feed, result: GateResult
) -> pl.DataFrame:
    """Report the cells the reader could not read as written; return their (column, row_index)
    under canonical names, so that the same cells are not reported again as missing values."""
    if raw.cells is None or raw.cells.height == 0:
        return pl.DataFrame(schema={"column": pl.Utf8, "row_index": pl.Int64})
    canonical = {
        source: feed_profile.columns.get(source, source if source in feed.column_names else None)
        for source in raw.cells.get_column("column").unique().to_list()
    }
    cells = raw.cells.with_columns(
        pl.col("column")
        .replace_strict(canonical, default=None, return_dtype=pl.Utf8)
        .fill_null(pl.col("column"))
        .alias("label")
    )
    totals = cells.group_by("rule", "label", maintain_order=True).len()
    for rule, label, count in totals.iter_rows():
        result.totals.append(RuleTotal(rule, label, count))
    examples = (
        cells.sort("row").group_by("rule", "label", maintain_order=True).head(EXAMPLES_PER_RULE)
    )
    for cell in examples.iter_rows(named=True):
        result.problems.append(
            Problem(cell["rule"], cell["message"], cell["label"], cell["row"], cell["value"])
        )
    return cells.filter(pl.col("row_index").is_not_null()).select(
        pl.col("label").alias("column"), "row_index"
    )


def _cell_text(frame: pl.DataFrame, row_index: int, column: str) -> str | None:
    """A cell as text for a report; never raises (a date beyond Python's range included)."""
    try:
        value = frame[row_index, column]
    except Exception:  # noqa: BLE001 - polars values Python cannot hold
        value = frame.get_column(column).slice(row_index, 1).cast(pl.Utf8)[0]
    return None if value is None else str(value)


def _record_failures(
    failures: pl.DataFrame,
    raw: RawFrame,
    renames: dict[str, str],
    typed: pl.DataFrame,
    feed_profile: FeedProfile,
    result: GateResult,
) -> None:
    """Totals per rule and column, and the first examples of each with the offending value."""
    if failures.height == 0:
        return
    source_of = {target: source for source, target in renames.items()}
    totals = (
        failures.group_by("rule", "column", maintain_order=True)
        .len()
        .sort("rule", "column", nulls_last=True)
    )
    examples = (
        failures.sort("row_index")
        .group_by("rule", "column", maintain_order=True)
        .head(EXAMPLES_PER_RULE)
    )
    for rule, column, count in totals.iter_rows():
        result.totals.append(RuleTotal(rule, column, count))
    for rule, column, row_index in examples.iter_rows():
        row = raw.row_of(row_index)
        if column is not None:
            source = source_of.get(column)
            value = (
                _cell_text(raw.frame, row_index, source)
                if source
                else _cell_text(typed, row_index, column)
            )
            label = f"{column} (file column '{source}')" if source and source != column else column
            message = _value_message(rule, label, value, column, feed_profile, result)
        else:
            shown = RULES[rule].columns or tuple(FEEDS[result.feed].key)
            value = ", ".join(
                f"{c}={_cell_text(typed, row_index, c)}" for c in shown if c in typed.columns
            )
            message = RULES[rule].description
        result.problems.append(Problem(rule, message, column=column, row=row, value=value))


#: What an oversight action's target column must be (`action.target_exists`).
_UNKNOWN_TARGET = {
    "study_id": "a study on any SMO's current site roster",
    "site_id": "a site on any SMO's current roster of the action's study",
    "kri_id": "a site KRI in seeds/kri_definitions.csv",
    "qtl_id": "a QTL in seeds/qtl_definitions.csv",
    "target_smo_id": "an SMO with a current site roster",
    "target_delivery_id": "a delivery id in the ledger (ops.deliveries)",
}


def _value_message(
    rule: str, label: str, value, column: str, feed_profile: FeedProfile, result: GateResult
) -> str:
    if rule == "value.type":
        dtype = FEEDS[result.feed].column(column).dtype
        opts = feed_profile.file
        if dtype == "date":
            fmt = feed_profile.date_formats[column]
            if fmt == EXCEL_SERIAL:
                return (
                    f"{label}: '{value}' is not an Excel serial day number (a whole number of "
                    f"days, 1 to {EXCEL_SERIAL_MAX[False]:,}, i.e. up to 9999-12-31)"
                )
            if (
                fmt == ISO_DATE
                and feed_profile.partial_dates == "reject"
                and value is not None
                and (re.fullmatch(_ISO_YEAR, value) or re.fullmatch(_ISO_MONTH, value))
            ):
                return (
                    f"{label}: '{value}' is a partial ISO 8601 date; the profile rejects partial "
                    "dates (partial_dates: first_day reads it as the first day with a precision)"
                )
            return f"{label}: '{value}' is not a date in the declared format {fmt}"
        if dtype in ("int", "float") and opts.type == "csv":
            separators = f"decimal separator '{opts.decimal}', " if dtype == "float" else ""
            separators += (
                f"thousands separator '{opts.thousands}'"
                if opts.thousands
                else "no thousands separator"
            )
            return f"{label}: '{value}' is not a valid {dtype} ({separators} declared)"
        return f"{label}: '{value}' is not a valid {dtype}"
    if rule == "value.enum":
        allowed = ", ".join(FEEDS[result.feed].column(column).enum or ())
        return f"{label}: '{value}' is not one of {allowed} (add a code mapping in the profile?)"
    if rule == "value.age_band":
        return (
            f"{label}: '{value}' is not an age band such as 18-64 or 75+ (whole years, lower <= "
            "upper; map the SMO's label onto one in the profile's codes)"
        )
    if rule == "date.not_after_delivery":
        return f"{label}: {value} is after the delivery date {result.delivery_date}"
    if rule == "value.required":
        return f"{label}: empty, but the column is required"
    if rule == "date.before_window":
        return f"{label}: {value} is before the plausible window for its study ({RULES[rule].description})"
    if rule == "action.target_exists":
        return f"{label}: '{value}' is not {_UNKNOWN_TARGET.get(column, 'known')}"
    if rule == "action.dates_in_order":
        return f"{label}: {value} is before the action's opened_date"
    if rule == "action.target_consistent":
        if value is None:
            return f"{label}: empty, but this target_type needs it ({RULES[rule].description})"
        return (
            f"{label}: '{value}' given, but this target_type has none ({RULES[rule].description})"
        )
    if rule == "action.closed_with_status":
        if value is None:
            return f"{label}: empty, but a DONE or CANCELLED action needs its closed_date"
        return f"{label}: {value} given, but the action is still open (OPEN or IN_PROGRESS)"
    if rule == "date.after_window":
        return f"{label}: {value} is implausibly far after the delivery date {result.delivery_date}"
    return f"{label}: {RULES[rule].description}"
