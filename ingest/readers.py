"""Read one delivery file into a frame of strings, exactly as the SMO wrote it.

Everything stays text here (no type inference): the gate parses values with the formats the
profile declares and can then quote the raw value in a report. Problems with the file itself
raise `DeliveryFileError` with a rule id from `expectations.contracts.RULES`.

Fidelity: a file is read only when every cell can be read as written. CSV records must have
as many fields as the header and well-formed quoting (checked on the text itself, so a stray
quote cannot silently merge rows, and the record count is cross-checked with the parser's);
control characters are refused in every encoding; XLSX error cells and formulas without a
computed value are reported with sheet, cell and column (the workbook library reads them as
empty). Such cells are returned in `RawFrame.cells` for the gate to report beside every other
problem of the file; problems that make the records themselves unreliable raise.
"""

from __future__ import annotations

import functools
import html
import mmap
import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ingest.profiles import FileOptions, regex_literal

COMMON_DELIMITERS = (",", ";", "\t", "|")
#: C0 control characters other than tab, line feed and carriage return; DEL; the C1 controls
#: (in text these mean binary data, a broken export or a wrongly declared encoding).
CONTROL_CHARACTERS = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]"
_CONTROL_RE = re.compile(CONTROL_CHARACTERS)
#: Rows named per structural rule in an error; the totals are always complete.
EXAMPLE_ROWS = 20
#: Characters of a record or value quoted in a report.
SHOWN_CHARS = 120
_UTF8_BOM = b"\xef\xbb\xbf"

#: Columns of `RawFrame.cells`: one row per cell that was not read as written.
CELL_SCHEMA = {
    "rule": pl.Utf8,
    "column": pl.Utf8,  # the file's own column name
    "row_index": pl.Int64,  # the cell's row in `RawFrame.frame`; null if not a data row
    "row": pl.Int64,  # the row as a spreadsheet shows it
    "value": pl.Utf8,
    "message": pl.Utf8,
}


@dataclass(frozen=True)
class Finding:
    """One problem the reader located: rule, message, and where it is."""

    rule: str
    message: str
    row: int | None = None
    column: str | None = None
    value: str | None = None


class DeliveryFileError(Exception):
    """The file cannot be read as the SMO wrote it.

    Either one problem (`rule`, `message`, `row`), or several located ones: `findings` holds
    the first examples per rule and `totals` the complete count per rule.
    """

    def __init__(
        self,
        rule: str,
        message: str,
        row: int | None = None,
        *,
        findings: list[Finding] | None = None,
        totals: dict[str, int] | None = None,
    ):
        self.rule, self.message, self.row = rule, message, row
        self.findings = list(findings) if findings else [Finding(rule, message, row)]
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.rule] = counts.get(finding.rule, 0) + 1
        self.totals = {**counts, **(totals or {})}
        super().__init__(message)


@dataclass(frozen=True)
class RawFrame:
    frame: pl.DataFrame
    #: Row number (as a spreadsheet shows it) of the first data row; data row i is at
    #: `first_data_row + i` unless `rows` says otherwise.
    first_data_row: int
    #: Spreadsheet row of each data row where they are not contiguous (blank workbook rows are
    #: not data); None when they are.
    rows: pl.Series | None = None
    #: Cells not read as written (CELL_SCHEMA); the gate reports them and rejects the file.
    cells: pl.DataFrame | None = None
    #: The workbook counts days from 1904-01-01 (Excel's 1904 date system).
    date1904: bool = False

    def row_numbers(self) -> pl.Series:
        if self.rows is not None:
            return self.rows.cast(pl.Int32)
        return pl.int_range(self.frame.height, dtype=pl.Int32, eager=True) + self.first_data_row

    def row_of(self, row_index: int) -> int:
        if self.rows is not None:
            return int(self.rows[row_index])
        return self.first_data_row + row_index


def read_delivery(path: Path, opts: FileOptions) -> RawFrame:
    if path.stat().st_size == 0:
        raise DeliveryFileError("file.empty", "The file is empty (0 bytes).")
    reader = {"csv": _read_csv, "xlsx": _read_xlsx, "xport": _read_xport}[opts.type]
    raw = reader(path, opts)
    if raw.frame.height == 0:
        raise DeliveryFileError(
            "file.no_rows", "The file has a header but no data rows; a snapshot cannot be empty."
        )
    return raw


# -- CSV --------------------------------------------------------------------------------------


def _read_csv(path: Path, opts: FileOptions) -> RawFrame:
    encoding = opts.encoding.lower()
    if encoding.startswith("utf-8") or encoding == "utf8":
        # Fast path: UTF-8 is checked on the mapped file and parsed by polars from the file,
        # without a copy in Python.
        with (
            path.open("rb") as handle,
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mm,
        ):
            _check_bom(mm[:2], opts)
            _check_text_head(mm[: 1 << 16], opts.encoding)
            start = len(_UTF8_BOM) if mm[:3] == _UTF8_BOM else 0
            layout = _CsvLayout(mm, start, opts, validate_utf8=True)
        source: Path | bytes = path
    else:
        data = path.read_bytes()
        _check_bom(data[:2], opts)
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DeliveryFileError(
                "file.encoding",
                f"Byte {exc.start} ({data[exc.start : exc.start + 1]!r}) is not valid "
                f"{opts.encoding}; check the encoding the profile declares.",
            ) from None
        source = text.removeprefix("\ufeff").encode("utf-8")
        del data, text
        layout = _CsvLayout(source, 0, opts, validate_utf8=False)
    try:
        frame = pl.read_csv(
            source,
            separator=opts.delimiter,
            quote_char=opts.quote or None,
            infer_schema=False,
            encoding="utf8",
        )
    except pl.exceptions.NoDataError:
        raise DeliveryFileError("file.empty", "The file has no content.") from None
    except pl.exceptions.ComputeError as exc:
        text = str(exc)
        # The rows, when the text shows why.
        layout.locate_problems(path if isinstance(source, Path) else None)
        raise DeliveryFileError(
            "file.unreadable", f"Not a readable CSV: {text.splitlines()[0]}"
        ) from None
    if (frame.height, frame.width) != (layout.records, layout.width):
        raise DeliveryFileError(
            "file.record_count",
            f"The CSV parser read {frame.height:,} records of {frame.width} fields, but the "
            f"file's lines hold {layout.records:,} records of {layout.width} fields; the file "
            "cannot be read unambiguously.",
        )
    frame = _strip(frame)
    cells = _control_cells(frame, header_row=1, first_data_row=2) if layout.controls else None
    return RawFrame(frame, first_data_row=2, cells=cells)


def _check_bom(first: bytes, opts: FileOptions) -> None:
    if first in (b"\xff\xfe", b"\xfe\xff") and not opts.encoding.lower().startswith("utf-16"):
        raise DeliveryFileError(
            "file.encoding",
            f"The file is UTF-16 (it starts with a byte-order mark) but the profile says "
            f"{opts.encoding}.",
        )


class _CsvLayout:
    """The record structure of CSV text (UTF-8 bytes), checked independently of the parser.

    A well-formed record is FIELD(DELIM FIELD)*, where FIELD is a quoted value (`"..."`, a quote
    inside doubled) or text without quotes or delimiters; a quote may only open a field. Every
    record has the header's field count. The common case (no quote in the file) is settled
    with byte counts: delimiters = (fields - 1) x lines, while the parser refuses rows with
    more fields than the header; otherwise every line is checked with vectorised regexes.
    Raises `DeliveryFileError` for what makes the text unreadable as records.
    """

    def __init__(self, data: bytes | mmap.mmap, start: int, opts: FileOptions, validate_utf8: bool):
        self.data, self.start, self.opts = data, start, opts
        self.delimiter, self.quote = opts.delimiter, opts.quote or ""
        size = len(data) - start
        if size == 0 or (size < 1 << 12 and not data[start:].strip()):
            raise DeliveryFileError("file.empty", "The file has no content.")
        delimiter = self.delimiter.encode()
        counts = _byte_counts(data, start, delimiter[0] if len(delimiter) == 1 else None)
        if validate_utf8 and counts.non_ascii:  # ASCII is valid UTF-8
            _validate_utf8(data[start:], opts.encoding)
        if data[-1:] != b"\n":
            raise DeliveryFileError(
                "file.truncated",
                "The file does not end with a line break; it may have been cut off while "
                "being written. Ask the SMO to resend it.",
            )
        self.lines = counts.line_feeds
        self.controls = counts.controls
        self.delimiters = (
            counts.delimiters if len(delimiter) == 1 else data[start:].count(delimiter)
        )
        self.has_quote = bool(self.quote) and data.find(self.quote.encode(), start) != -1
        end = data.find(b"\n", start)
        self.header = data[start:end].decode("utf-8").removesuffix("\r")
        self.records = self.lines - 1
        self.width = _field_count(self.header, self.delimiter, self.quote)
        self._located = False
        self._check_delimiter()
        if self.has_quote or self.delimiters != (self.width - 1) * self.lines:
            self.locate_problems()

    def locate_problems(self, reread: Path | None = None) -> None:
        """Check every line; raise naming the rows of any structural problem. `reread`: the
        file, when the mapped bytes the layout was made from are closed."""
        if not self._located:
            self._located = True
            data = reread.read_bytes() if reread is not None else self.data
            self._check_lines(data[self.start :].decode("utf-8"))

    def _check_delimiter(self) -> None:
        if self.width != 1:
            return
        others = [d for d in COMMON_DELIMITERS if d != self.delimiter and d in self.header]
        if others:
            raise DeliveryFileError(
                "file.delimiter",
                f"The header does not split on the declared delimiter {self.delimiter!r} but "
                f"contains {others[0]!r}; the file or the profile's delimiter is wrong.",
                row=1,
            )

    def _check_lines(self, text: str) -> None:
        d, q = self.delimiter, self.quote
        multiline = self.opts.multiline_values
        lines = pl.Series("line", [text]).str.split("\n").explode()
        del text
        lines = lines.head(lines.len() - 1).str.strip_suffix("\r")  # the text ends with "\n"
        line = pl.col("line")
        Q, D = regex_literal(q), regex_literal(d)
        quoted_field = f"{Q}(?:[^{Q}]|{Q}{Q})*{Q}"
        field = f"(?:{quoted_field}|[^{Q}{D}]*)" if q else f"[^{D}]*"
        # The common case in one regex pass: every line a well-formed record of `width` fields
        # (so no quote is left open either). Only otherwise is each line taken apart.
        exact = f"^{field}(?:{D}{field}){{{self.width - 1}}}$"
        if not self.controls and lines.str.contains(exact).all():
            return
        if q:
            has_quote = line.str.contains(q, literal=True)
            well_formed = (
                pl.when(has_quote).then(line.str.contains(f"^{field}(?:{D}{field})*$"))
            ).otherwise(True)
            bare = pl.when(has_quote).then(line.str.replace_all(quoted_field, "")).otherwise(line)
            odd = has_quote & (line.str.count_matches(q, literal=True) % 2 == 1)
        else:
            well_formed, bare, odd = pl.lit(True), line, pl.lit(False)
        # A line starts inside a quoted value when the lines before it hold an odd number of
        # quotes: it continues the record of the line before it.
        frame = (
            pl.DataFrame({"line": lines})
            .lazy()
            .with_row_index("line_no")
            .with_columns(
                odd.alias("odd"),
                well_formed.alias("well_formed"),
                (bare.str.count_matches(d, literal=True) + 1).alias("fields"),
                line.str.contains(CONTROL_CHARACTERS).alias("control"),
            )
            .with_columns(
                ((pl.col("odd").cast(pl.Int64).cum_sum() - pl.col("odd")) % 2 == 1).alias(
                    "continues"
                )
            )
            .with_columns(
                ((~pl.col("continues")).cast(pl.Int64).cum_sum() - 1).alias("record"),
                pl.col("continues").shift(-1, fill_value=False).alias("spans"),
            )
            .collect()
        )
        del lines
        self.records = int(frame["record"].max())
        unclosed = int(frame["odd"].sum()) % 2 == 1
        columns = ["record", "line_no", "line", "well_formed", "fields", "control", "spans"]
        records = frame.filter(~pl.col("continues") & ~pl.col("spans")).select(columns)
        parts = frame.filter(pl.col("continues") | pl.col("spans"))
        if parts.height:
            joined = parts.group_by("record", maintain_order=True).agg(
                pl.col("line_no").first(),
                pl.col("line").str.join("\n") if multiline else pl.col("line").first(),
                pl.col("control").any(),
            )
            if multiline:  # the record as a whole must be well formed
                joined = joined.with_columns(
                    pl.col("line")
                    .map_elements(lambda r: _is_well_formed(r, d, q), return_dtype=pl.Boolean)
                    .alias("well_formed"),
                    pl.col("line")
                    .map_elements(lambda r: _field_count(r, d, q), return_dtype=pl.Int64)
                    .alias("fields"),
                )
            else:
                joined = joined.with_columns(
                    pl.lit(True).alias("well_formed"), pl.lit(self.width).alias("fields")
                )
            joined = joined.with_columns(pl.lit(True).alias("spans")).select(columns)
            records = pl.concat([records, joined], how="vertical_relaxed").sort("record")
        # Rows as a spreadsheet shows them: records when values may span lines, else lines.
        row = (pl.col("record") if multiline else pl.col("line_no")) + 1
        last = self.records
        problems = records.filter(
            ~pl.col("well_formed")
            | (pl.col("fields") != self.width)
            | (pl.col("spans") & (not multiline))
            | ((pl.col("record") == last) & unclosed)
        )
        if problems.height:
            controls = records.filter(pl.col("control"))
            self._raise(
                problems.with_columns(row.alias("row")),
                controls.with_columns(row.alias("row")),
                unclosed_record=last if unclosed else None,
            )

    def _raise(
        self, problems: pl.DataFrame, controls: pl.DataFrame, unclosed_record: int | None
    ) -> None:
        quoting, ragged = [], []
        for rec in problems.iter_rows(named=True):
            row, shown = rec["row"], _shown(rec["line"])
            if rec["record"] == unclosed_record:
                message = (
                    f"Row {row}: a quote opened here is never closed; the rest of the file "
                    "would be read as one value."
                )
                quoting.append(Finding("file.quoting", message, row, value=shown))
            elif rec["spans"] and not self.opts.multiline_values:
                message = (
                    f"Row {row}: a quoted value runs over a line break (an unbalanced quote?) "
                    "and would merge rows. If the SMO's values really span lines, declare "
                    "`multiline_values: true` in the profile."
                )
                quoting.append(Finding("file.quoting", message, row, value=shown))
            elif not rec["well_formed"]:
                message = (
                    f"Row {row}: malformed quoting (a quote inside an unquoted value, or text "
                    "after a closing quote); the row cannot be read as written."
                )
                quoting.append(Finding("file.quoting", message, row, value=shown))
            else:
                message = (
                    f"Row {row} has {rec['fields']} fields; the header has {self.width} (a "
                    "missing or extra delimiter, or a blank line?)."
                )
                ragged.append(Finding("file.ragged_row", message, row, value=shown))
        control = [
            Finding(
                "value.control_character",
                f"Row {rec['row']} contains a control character ({_control_names(rec['line'])}): "
                "binary data, a broken export or a wrongly declared encoding.",
                rec["row"],
                value=_shown(rec["line"]),
            )
            for rec in controls.head(EXAMPLE_ROWS).iter_rows(named=True)
        ]
        findings = [*quoting[:EXAMPLE_ROWS], *ragged[:EXAMPLE_ROWS], *control]
        totals = {"file.quoting": len(quoting), "file.ragged_row": len(ragged)}
        totals["value.control_character"] = controls.height
        first = findings[0]
        raise DeliveryFileError(
            first.rule,
            first.message,
            first.row,
            findings=findings,
            totals={rule: n for rule, n in totals.items() if n},
        )


@functools.lru_cache(maxsize=16)
def _field_regexes(delimiter: str, quote: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    d, q = re.escape(delimiter), re.escape(quote)
    quoted = f"{q}(?:[^{q}]|{q}{q})*{q}"
    field = f"(?:{quoted}|[^{q}{d}]*)"
    return re.compile(f"{field}(?:{d}{field})*", re.DOTALL), re.compile(quoted, re.DOTALL)


def _is_well_formed(record: str, delimiter: str, quote: str) -> bool:
    if not quote:
        return True
    return _field_regexes(delimiter, quote)[0].fullmatch(record) is not None


def _field_count(record: str, delimiter: str, quote: str) -> int:
    if quote:
        record = _field_regexes(delimiter, quote)[1].sub("", record)
    return record.count(delimiter) + 1


def _validate_utf8(data: bytes, encoding: str) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DeliveryFileError(
            "file.encoding",
            f"The file is not valid UTF-8 as the profile declares ({encoding}) at byte "
            f"{exc.start}; it may be in another encoding or not a text file at all.",
        ) from None


@dataclass(frozen=True)
class _ByteCounts:
    line_feeds: int
    delimiters: int
    non_ascii: int
    #: Any C0 control but tab/LF/CR, DEL, or a C1 control (U+0080-U+009F) in UTF-8.
    controls: bool


def _byte_counts(data: bytes | mmap.mmap, start: int, delimiter: int | None) -> _ByteCounts:
    """Counts over UTF-8 bytes with numpy, 1 MiB at a time so each pass stays in cache: bytes
    below 0x20 must all be line feeds, carriage returns or tabs."""
    array = np.frombuffer(data, dtype=np.uint8)
    try:
        line_feeds = delimiters = non_ascii = low = returns_and_tabs = 0
        step = 1 << 20
        for i in range(start, len(array), step):
            chunk = array[i : i + step]
            line_feeds += int(np.count_nonzero(chunk == 0x0A))
            low += int(np.count_nonzero(chunk < 0x20))
            non_ascii += int(np.count_nonzero(chunk >= 0x80))
            if delimiter is not None:
                delimiters += int(np.count_nonzero(chunk == delimiter))
        if low != line_feeds:
            for i in range(start, len(array), step):
                chunk = array[i : i + step]
                returns_and_tabs += int(np.count_nonzero((chunk == 0x0D) | (chunk == 0x09)))
        controls = low != line_feeds + returns_and_tabs or data.find(b"\x7f", start) != -1
        if not controls and non_ascii and data.find(b"\xc2", start) != -1:
            lead = np.flatnonzero(array[start:-1] == 0xC2) + start
            follow = array[lead + 1]
            controls = bool(np.any((follow >= 0x80) & (follow <= 0x9F)))
            del lead, follow
    finally:
        del array  # an mmap cannot close while an array views it
    return _ByteCounts(line_feeds, delimiters, non_ascii, controls)


def _control_names(text: str) -> str:
    found = sorted({f"U+{ord(c):04X}" for c in _CONTROL_RE.findall(text)})
    return ", ".join(found[:5]) or "none"


def _shown(text: str | None) -> str | None:
    """A value as a report shows it: control characters visible, long text cut."""
    if text is None:
        return None
    visible = _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return visible if len(visible) <= SHOWN_CHARS else visible[:SHOWN_CHARS] + "..."


def _control_cells(
    frame: pl.DataFrame, *, header_row: int, first_data_row: int, rows: pl.Series | None = None
) -> pl.DataFrame | None:
    """One CELL_SCHEMA row per header or cell that holds a control character."""
    found = [
        {
            "rule": "value.control_character",
            "column": column,
            "row_index": None,
            "row": header_row,
            "value": _shown(column),
            "message": f"The header '{_shown(column)}' contains a control character "
            f"({_control_names(column)}).",
        }
        for column in frame.columns
        if _CONTROL_RE.search(column)
    ]
    text_columns = [c for c, t in frame.schema.items() if t == pl.Utf8]
    flagged = frame.select(
        pl.col(c).str.contains(CONTROL_CHARACTERS).any().alias(c) for c in text_columns
    )
    hit_columns = [c for c in text_columns if flagged[0, c]]
    if hit_columns:
        row_numbers = (
            rows
            if rows is not None
            else pl.int_range(frame.height, dtype=pl.Int64, eager=True) + first_data_row
        )
        hits = (
            frame.select(hit_columns)
            .with_columns(row_numbers.cast(pl.Int64).alias("__row"))
            .with_row_index("row_index")
            .unpivot(index=["row_index", "__row"], variable_name="column", value_name="value")
            .filter(pl.col("value").str.contains(CONTROL_CHARACTERS))
        )
        found.extend(
            {
                "rule": "value.control_character",
                "column": column,
                "row_index": row_index,
                "row": row,
                "value": _shown(value),
                "message": f"'{column}' holds a control character ({_control_names(value)}): "
                "binary data, a broken export or a wrongly declared encoding.",
            }
            for row_index, row, column, value in hits.iter_rows()
        )
    return pl.DataFrame(found, schema=CELL_SCHEMA) if found else None


#: A date cell before 1900-03-01 as calamine renders it: Excel's 1900 calendar counts a
#: 29 February 1900 that never was, so such a cell does not read as Excel shows it.
_EARLY_DATE_CELL = r"^(?:1899-|1900-0[12]-)[0-9-]* [0-9:]+$"


def _early_date_cells(frame: pl.DataFrame, rows: pl.Series) -> pl.DataFrame | None:
    flagged = frame.select(pl.col(c).str.contains(_EARLY_DATE_CELL).any() for c in frame.columns)
    hit = [c for c in frame.columns if flagged[0, c]]
    if not hit:
        return None
    cells = (
        frame.select(hit)
        .with_columns(rows.alias("__row"))
        .with_row_index("row_index")
        .unpivot(index=["row_index", "__row"], variable_name="column", value_name="value")
        .filter(pl.col("value").str.contains(_EARLY_DATE_CELL))
    )
    return pl.DataFrame(
        [
            {"rule": "value.type", "column": column, "row_index": row_index, "row": row,
             "value": value,
             "message": f"'{column}' holds a date cell before 1900-03-01 ({value}): Excel's "
                        "calendar is not the real one there (it counts a 29 February 1900), so "
                        "the day cannot be read as Excel shows it."}
            for row_index, row, column, value in cells.iter_rows()
        ],
        schema=CELL_SCHEMA,
    )  # fmt: skip


def _check_text_head(head: bytes, encoding: str) -> None:
    first_line = head.split(b"\n", 1)[0]
    try:
        first_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(first_line) < len(head) or exc.reason != "unexpected end of data":
            raise DeliveryFileError(
                "file.encoding",
                f"The header is not valid UTF-8 as the profile declares ({encoding}) at byte "
                f"{exc.start}; the file is in another encoding or is not a text file.",
            ) from None
    # Many NUL bytes: UTF-16 or binary, not text in this encoding. A few are control
    # characters in values (value.control_character, with the rows).
    if head.count(b"\x00") * 100 >= len(head):
        raise DeliveryFileError(
            "file.encoding",
            f"The file contains NUL bytes: not {encoding} text (binary or UTF-16?).",
        )


def _strip(frame: pl.DataFrame) -> pl.DataFrame:
    """Trim header names. Values stay as written (reports quote them); the gate trims them."""
    return frame.rename({c: c.strip().lstrip("\ufeff") for c in frame.columns})


# -- XLSX -------------------------------------------------------------------------------------


def _read_xlsx(path: Path, opts: FileOptions) -> RawFrame:
    """Cells as text, read with calamine; real date cells become ISO dates.

    calamine reads error cells (#N/A, #REF!, ...) and formulas without a saved value as empty
    (or as the placeholder 0 some writers store), so the sheet's XML is checked for them too.
    """
    import fastexcel

    try:
        book = fastexcel.read_excel(path)
    except Exception as exc:  # noqa: BLE001 - calamine raises its own types for broken workbooks
        raise DeliveryFileError(
            "file.unreadable", f"Not a readable XLSX workbook ({exc})."
        ) from None
    if opts.sheet not in book.sheet_names:
        raise DeliveryFileError(
            "file.sheet_missing",
            f"No sheet named {opts.sheet!r}; the workbook has {book.sheet_names}.",
        )
    try:
        sheet = book.load_sheet_by_name(opts.sheet, header_row=opts.header_row - 1, dtypes="string")
        frame = sheet.to_polars()
    except Exception as exc:  # noqa: BLE001
        raise DeliveryFileError(
            "file.unreadable",
            f"Sheet {opts.sheet!r} cannot be read from row {opts.header_row} ({exc}).",
        ) from None
    try:
        xml = _SheetXml(path, opts.sheet)
    except (KeyError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DeliveryFileError(
            "file.unreadable", f"Sheet {opts.sheet!r}: the workbook's XML is not readable ({exc})."
        ) from None
    # calamine takes header_row 0 as the first row that holds anything; any other as absolute.
    header_row = opts.header_row if opts.header_row > 1 else xml.first_row_with_content() or 1
    first_data_row = header_row + 1
    unnamed = [
        c
        for c in frame.columns
        if c.startswith("__UNNAMED__") and frame[c].null_count() == frame.height
    ]
    frame = frame.drop(unnamed)
    frame = frame.with_row_index("__row", offset=first_data_row)
    frame = frame.filter(~pl.all_horizontal(pl.exclude("__row").is_null()))  # blank rows
    rows = frame.get_column("__row").cast(pl.Int64)
    frame = _strip(frame.drop("__row").with_columns(pl.all().cast(pl.Utf8)))
    cells = [xml.unread_cells(header_row, rows, frame), _early_date_cells(frame, rows)]
    # A date cell reads as "2024-03-05 00:00:00"; at midnight it is a date.
    frame = frame.with_columns(pl.all().str.replace(r"^(\d{4}-\d\d-\d\d) 00:00:00$", "$1"))
    cells.append(
        _control_cells(frame, header_row=header_row, first_data_row=first_data_row, rows=rows)
    )
    cells = [c for c in cells if c is not None and c.height]
    return RawFrame(
        frame,
        first_data_row=first_data_row,
        rows=rows,
        cells=pl.concat(cells) if cells else None,
        date1904=xml.date1904,
    )


_CELL_RE = re.compile(rb"<(?:\w+:)?c\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?c>)", re.DOTALL)
_ATTR_RE = re.compile(rb"""\b([\w:]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_FORMULA_RE = re.compile(rb"<(?:\w+:)?f\b([^>]*?)(?:/>|>(.*?)</(?:\w+:)?f>)", re.DOTALL)
_VALUE_RE = re.compile(rb"<(?:\w+:)?v>(.*?)</(?:\w+:)?v>", re.DOTALL)
_TEXT_RE = re.compile(rb"<(?:\w+:)?t\b[^>]*>(.*?)</(?:\w+:)?t>", re.DOTALL)
_ERROR_MARK_RE = re.compile(rb"""\bt\s*=\s*["']e["']""")
_FORMULA_MARK_RE = re.compile(rb"<(?:\w+:)?f[\s>/]")
_ROW_RE = re.compile(rb"""<(?:\w+:)?row\b[^>]*?\br\s*=\s*["'](\d+)["']""")
_CONTENT_CELL_RE = re.compile(
    rb"""<(?:\w+:)?c\b[^>]*?\br\s*=\s*["'][A-Z]+(\d+)["'][^>]*?>\s*<(?!/)"""
)


class _SheetXml:
    """The worksheet's XML, for what calamine does not show: error cells, formulas without a
    computed value, the 1904 date system, and where the table starts."""

    def __init__(self, path: Path, sheet: str):
        self.sheet = sheet
        with zipfile.ZipFile(path) as book:
            workbook = book.read("xl/workbook.xml")
            self.date1904 = re.search(rb"""date1904\s*=\s*["'](1|true)["']""", workbook) is not None
            # A writer that does not calculate (xlsxwriter, openpyxl) stores a placeholder as
            # every formula's value and asks Excel to recalculate when the file is opened.
            self.recalculate = (
                re.search(rb"""fullCalcOnLoad\s*=\s*["'](1|true)["']""", workbook) is not None
            )
            self.path = _sheet_path(book, workbook, sheet)
            self.xml = book.read(self.path)
            self._book_path = path

    def first_row_with_content(self) -> int | None:
        m = _CONTENT_CELL_RE.search(self.xml)
        return int(m.group(1)) if m else None

    def unread_cells(
        self, header_row: int, rows: pl.Series, frame: pl.DataFrame
    ) -> pl.DataFrame | None:
        """Cells at or below the header that calamine shows as something else or as empty:
        error cells, formulas without a computed value, and values it cannot represent (a date
        cell beyond Excel's calendar reads as empty). The last are found by counting: the
        values in the XML below the header must be the non-empty cells of the frame."""
        found: dict[str, tuple[str, str, int, str, str]] = {}
        for entry in self._errors_and_formulas(header_row):
            found.setdefault(entry[3], entry)
        start = self._data_offset(header_row)
        present = sum(frame.height - frame[c].null_count() for c in frame.columns)
        if start is not None and self._value_count(start) != present:
            for entry in self._hidden_values(start, rows, frame, header_row):
                found.setdefault(entry[3], entry)
        if not found:
            return None
        headers = self._header_names(header_row)
        index_of = {int(r): i for i, r in enumerate(rows.to_list())}
        records = []
        for rule, letters, row, ref, shown, what in found.values():
            header = headers.get(letters)
            label = f"column '{header}'" if header else f"column {letters}"
            records.append(
                {"rule": rule, "column": header or letters, "row": row,
                 "row_index": index_of.get(row), "value": shown,
                 "message": f"Sheet '{self.sheet}', cell {ref} ({label}) {what}; the file must "
                            "carry the values themselves (paste as values, or recalculate and "
                            "save in Excel)."}
            )  # fmt: skip
        return pl.DataFrame(records, schema=CELL_SCHEMA)

    def _errors_and_formulas(self, header_row: int):
        xml = self.xml
        has_errors = b't="e"' in xml or b"t='e'" in xml
        has_formulas = b"<f" in xml or b":f>" in xml or b":f " in xml
        if not has_errors and not has_formulas:
            return  # the common case costs two substring searches
        starts: set[int] = set()
        if has_errors:
            starts.update(_cell_start(xml, m.start()) for m in _ERROR_MARK_RE.finditer(xml))
        if has_formulas:
            starts.update(_cell_start(xml, m.start()) for m in _FORMULA_MARK_RE.finditer(xml))
        for start in sorted(s for s in starts if s >= 0):
            cell = _CELL_RE.match(xml, start)
            if cell is None:
                continue
            attrs = _attributes(cell.group(1))
            ref, body = attrs.get("r", ""), cell.group(2) or b""
            m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
            if m is None or int(m.group(2)) < header_row:
                continue  # a title block above the table is not data
            value = _VALUE_RE.search(body)
            value_text = html.unescape(value.group(1).decode("utf-8")) if value else ""
            formula = _FORMULA_RE.search(body)
            if attrs.get("t") == "e":
                shown = value_text or "#?"
                yield (
                    "value.error_cell",
                    m.group(1),
                    int(m.group(2)),
                    ref,
                    shown,
                    (f"holds the error value {shown}"),
                )
            elif formula is not None and (not value_text or self.recalculate):
                text = html.unescape((formula.group(2) or b"").decode("utf-8"))
                shown = f"={text}" if text else "(shared formula)"
                what = (
                    f"holds the formula {shown} with no computed value saved"
                    if not value_text
                    else f"holds the formula {shown}, whose saved value {value_text!r} was never "
                    "computed (the workbook asks to be recalculated when opened)"
                )
                yield "value.formula_without_value", m.group(1), int(m.group(2)), ref, shown, what

    def _data_offset(self, header_row: int) -> int | None:
        """Offset of the first row element below the header row (None: no data rows)."""
        for m in _ROW_RE.finditer(self.xml):
            if int(m.group(1)) > header_row:
                return m.start()
        return None

    def _value_count(self, start: int) -> int:
        """Cells with a value from `start` on: `<v>` elements that are not empty, and inline
        strings (with or without a namespace prefix)."""
        xml = self.xml
        if b"<v>" in xml or b"<is>" in xml or not re.search(rb"<\w+:c\b", xml):
            return (
                xml.count(b"<v>", start) - xml.count(b"<v></v>", start) + xml.count(b"<is>", start)
            )
        return len(re.findall(rb"<(?:\w+:)?(?:v>(?!</)|is>)", xml[start:]))

    def _hidden_values(self, start: int, rows: pl.Series, frame: pl.DataFrame, header_row: int):
        """Cells with a value in the XML that the frame holds as empty."""
        headers = self._header_names(header_row)
        index_of = {int(r): i for i, r in enumerate(rows.to_list())}
        shared: list[str] | None = None
        for cell in _CELL_RE.finditer(self.xml, start):
            attrs = _attributes(cell.group(1))
            m = re.fullmatch(r"([A-Z]+)(\d+)", attrs.get("r", ""))
            header = headers.get(m.group(1)) if m else None
            if header is None or header not in frame.columns:
                continue
            body, kind = cell.group(2) or b"", attrs.get("t")
            if kind == "inlineStr":
                text = "".join(html.unescape(t.decode("utf-8")) for t in _TEXT_RE.findall(body))
            else:
                value = _VALUE_RE.search(body)
                text = html.unescape(value.group(1).decode("utf-8")) if value else ""
                if kind == "s" and text.strip().isdigit():
                    if shared is None:
                        shared = _shared_strings(self._book_path)
                    index = int(text)
                    text = shared[index] if index < len(shared) else ""
            index = index_of.get(int(m.group(2)))
            if not text or (index is not None and frame[index, header] is not None):
                continue
            yield (
                "value.type",
                m.group(1),
                int(m.group(2)),
                m.group(0),
                text,
                (
                    f"holds {text!r}, which reads as empty: not a value the workbook can show "
                    "(a date cell must hold a day of Excel's calendar, serial 1 to 2958465)"
                ),
            )

    def _header_names(self, header_row: int) -> dict[str, str]:
        """Column letter -> header text of the header row (only read when reporting)."""
        row = re.search(
            rb"<(?:\w+:)?row\b[^>]*?\br\s*=\s*[\"']%d[\"'][^>]*>(.*?)</(?:\w+:)?row>" % header_row,
            self.xml,
            re.DOTALL,
        )
        if row is None:
            return {}
        shared: list[str] | None = None
        names = {}
        for cell in _CELL_RE.finditer(row.group(1)):
            attrs = _attributes(cell.group(1))
            m = re.fullmatch(r"([A-Z]+)\d+", attrs.get("r", ""))
            body = cell.group(2) or b""
            if m is None:
                continue
            if attrs.get("t") == "s":
                if shared is None:
                    shared = _shared_strings(self._book_path)
                value = _VALUE_RE.search(body)
                index = int(value.group(1)) if value and value.group(1).strip().isdigit() else -1
                text = shared[index] if 0 <= index < len(shared) else ""
            elif attrs.get("t") == "inlineStr":
                text = "".join(html.unescape(t.decode("utf-8")) for t in _TEXT_RE.findall(body))
            else:
                value = _VALUE_RE.search(body)
                text = html.unescape(value.group(1).decode("utf-8")) if value else ""
            if text.strip():
                names[m.group(1)] = text.strip()
        return names


def _cell_start(xml: bytes, pos: int) -> int:
    """Offset of the `<c` (or `<x:c`) element that contains offset `pos`."""
    plain = xml.rfind(b"<c ", 0, pos + 1)
    prefixed = xml.rfind(b":c ", 0, pos + 1)
    if prefixed > plain:
        return xml.rfind(b"<", 0, prefixed)
    return plain


def _attributes(raw: bytes) -> dict[str, str]:
    out = {}
    for name, double, single in _ATTR_RE.findall(raw):
        key = name.decode("utf-8").split(":")[-1]
        out.setdefault(key, html.unescape((double or single).decode("utf-8")))
    return out


def _sheet_path(book: zipfile.ZipFile, workbook: bytes, sheet: str) -> str:
    """The archive path of the worksheet named `sheet` (workbook.xml + its relationships)."""
    rel_id = None
    for m in re.finditer(rb"<(?:\w+:)?sheet\b([^>]*?)/?>", workbook):
        attrs = _attributes(m.group(1))
        if attrs.get("name") == sheet:
            rel_id = attrs.get("id")
            break
    if rel_id is None:
        raise ValueError(f"no sheet {sheet!r} in xl/workbook.xml")
    rels = book.read("xl/_rels/workbook.xml.rels")
    for m in re.finditer(rb"<(?:\w+:)?Relationship\b([^>]*?)/?>", rels):
        attrs = _attributes(m.group(1))
        if attrs.get("Id") == rel_id:
            target = attrs.get("Target", "")
            if target.startswith("/"):
                return target.lstrip("/")
            return posixpath.normpath(posixpath.join("xl", target))
    raise ValueError(f"sheet {sheet!r} has no part in xl/_rels/workbook.xml.rels")


def _shared_strings(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as book:
        try:
            xml = book.read("xl/sharedStrings.xml")
        except KeyError:
            return []
    items = re.findall(rb"<(?:\w+:)?si\b[^>]*>(.*?)</(?:\w+:)?si>", xml, re.DOTALL)
    return [
        "".join(html.unescape(t.decode("utf-8")) for t in _TEXT_RE.findall(item)) for item in items
    ]


# -- SAS XPORT --------------------------------------------------------------------------------


def _read_xport(path: Path, opts: FileOptions) -> RawFrame:
    """SAS transport (XPORT v5), the CDISC SDTM submission format."""
    import pandas as pd

    try:
        pdf = pd.read_sas(path, format="xport", encoding=opts.encoding)
    except Exception as exc:  # pandas raises several types for a malformed file
        raise DeliveryFileError(
            "file.unreadable", f"Not a readable SAS XPORT file ({exc})."
        ) from None
    frame = pl.from_pandas(pdf)
    # Numeric SAS variables arrive as floats: VISITNUM 3.0 becomes the text "3", 3.1 stays "3.1".
    floats = (pl.Float32, pl.Float64)
    text = pl.exclude(*floats).cast(pl.Utf8)
    frame = frame.with_columns(
        pl.col(*floats).cast(pl.Utf8).str.replace(r"\.0$", ""),
        # SAS has no empty string: a blank character value is SAS's missing value.
        pl.when(text.str.strip_chars(" ").str.len_bytes() > 0).then(text).name.keep(),
    )
    frame = _strip(frame)
    return RawFrame(
        frame, first_data_row=1, cells=_control_cells(frame, header_row=0, first_data_row=1)
    )
