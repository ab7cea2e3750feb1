"""Read one delivery file into a frame of strings, exactly as the SMO wrote it.

Everything stays text here (no type inference): the gate parses values with the formats the
profile declares and can then quote the raw value in a report. Problems with the file itself
raise `DeliveryFileError` with a rule id from `expectations.contracts.RULES`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ingest.profiles import FileOptions

COMMON_DELIMITERS = (",", ";", "\t", "|")


class DeliveryFileError(Exception):
    def __init__(self, rule: str, message: str, row: int | None = None):
        self.rule, self.message, self.row = rule, message, row
        super().__init__(message)


@dataclass(frozen=True)
class RawFrame:
    frame: pl.DataFrame
    #: Row number (as a spreadsheet shows it) of the first data row; data row i is at
    #: `first_data_row + i`.
    first_data_row: int


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


def _read_csv(path: Path, opts: FileOptions) -> RawFrame:
    encoding = opts.encoding.lower()
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
        handle.seek(-min(2, len(head)), io.SEEK_END)
        tail = handle.read()
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and not encoding.startswith("utf-16"):
        raise DeliveryFileError(
            "file.encoding",
            f"The file is UTF-16 (it starts with a byte-order mark) but the profile says "
            f"{opts.encoding}.",
        )
    if encoding.startswith("utf-8") or encoding == "utf8":
        # Fast path: polars reads UTF-8 straight from the file (BOM is skipped by polars) and
        # rejects invalid UTF-8 in data rows, but not in the header: check the head here.
        _check_text_head(head, opts.encoding)
        source: Path | bytes = path
        last_line_ends = tail.endswith(b"\n") or tail.endswith(b"\r")
    else:
        data = path.read_bytes()
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise DeliveryFileError(
                "file.encoding",
                f"Byte {exc.start} ({data[exc.start : exc.start + 1]!r}) is not valid "
                f"{opts.encoding}; check the encoding the profile declares.",
            ) from None
        last_line_ends = text.endswith(("\n", "\r"))
        source = text.lstrip("\ufeff").encode("utf-8")
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
        if "utf-8" in text:
            raise DeliveryFileError(
                "file.encoding",
                f"The file is not valid UTF-8 as the profile declares ({opts.encoding}); it may be "
                "in another encoding or not a text file at all.",
            ) from None
        if "more fields" in text:
            raise DeliveryFileError(
                "file.ragged_row",
                "A row has more fields than the header (a stray delimiter or an unclosed quote).",
            ) from None
        raise DeliveryFileError(
            "file.unreadable", f"Not a readable CSV: {text.splitlines()[0]}"
        ) from None
    # Checked after parsing, so a file that is not text at all is reported as such first.
    if not last_line_ends:
        raise DeliveryFileError(
            "file.truncated",
            "The file does not end with a line break; it may have been cut off while being "
            "written. Ask the SMO to resend it.",
        )
    if frame.width == 1:
        header = frame.columns[0]
        others = [d for d in COMMON_DELIMITERS if d != opts.delimiter and d in header]
        if others:
            raise DeliveryFileError(
                "file.delimiter",
                f"The header does not split on the declared delimiter {opts.delimiter!r} but "
                f"contains {others[0]!r}; the file or the profile's delimiter is wrong.",
                row=1,
            )
    return RawFrame(_strip(frame), first_data_row=2)


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
    if b"\x00" in head:
        raise DeliveryFileError(
            "file.encoding",
            f"The file contains NUL bytes: not {encoding} text (binary or UTF-16?).",
        )


def _strip(frame: pl.DataFrame) -> pl.DataFrame:
    """Trim header names. Values stay as written (reports quote them); the gate trims them."""
    return frame.rename({c: c.strip().lstrip("\ufeff") for c in frame.columns})


def _read_xlsx(path: Path, opts: FileOptions) -> RawFrame:
    """Cells as text, read with calamine; real date cells become ISO dates."""
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
    unnamed = [
        c
        for c in frame.columns
        if c.startswith("__UNNAMED__") and frame[c].null_count() == frame.height
    ]
    frame = frame.drop(unnamed)
    frame = frame.filter(~pl.all_horizontal(pl.all().is_null()))  # blank rows are not data
    # A date cell reads as "2024-03-05 00:00:00"; at midnight it is a date.
    frame = frame.with_columns(
        pl.all().cast(pl.Utf8).str.replace(r"^(\d{4}-\d\d-\d\d) 00:00:00$", "$1")
    )
    return RawFrame(_strip(frame), first_data_row=opts.header_row + 1)


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
    frame = frame.with_columns(
        pl.col(*floats).cast(pl.Utf8).str.replace(r"\.0$", ""),
        pl.exclude(*floats).cast(pl.Utf8),
    )
    return RawFrame(_strip(frame), first_data_row=1)
