"""Redacted copies: a delivery without the identifier columns its profile strips.

When an SMO's profile lists a column under `strip_identifiers`, the column never reaches a
table, and the file the pipeline keeps (archive or quarantine) is a copy without it, in the
delivery's own format so the archive can still rebuild a past week with the same profile:

- CSV: decoded with the declared encoding (a byte-order mark is kept as it was), parsed with the
  declared delimiter and quote, the columns cut from every record, and rewritten with the same
  delimiter, quote, encoding and line ending. Fields are quoted where they need it (all fields
  when the original quoted every header field); other fields keep their text exactly.
- XLSX: loaded with openpyxl, the columns deleted from the declared sheet (found on its header
  row) and the workbook saved; other sheets, title rows, cell types and formats stay. openpyxl
  writes the shared-string table afresh, so removed values do not survive in it.
- XPORT (SAS transport v5): cut at the byte level. The variables' NAMESTR records are removed
  (the rest renumbered and repositioned) and their bytes cut out of every fixed-width
  observation; every other byte, numeric values included, is copied unchanged.

The original bytes are not written anywhere; only their SHA-256 and size are recorded.
"""

from __future__ import annotations

import csv
import io
import struct
from pathlib import Path

from ingest.profiles import FileOptions


class RedactionError(Exception):
    """The file cannot be rewritten without the columns (unreadable, or a format we cannot
    rewrite safely)."""


def redact_delivery(src: Path, dst: Path, opts: FileOptions, columns: frozenset[str]) -> list[str]:
    """Write `src` without `columns` to `dst` (which must not exist).

    Returns the columns removed, in file order; when none of them is in the file nothing is
    written and the list is empty.
    """
    writer = {"csv": _redact_csv, "xlsx": _redact_xlsx, "xport": _redact_xport}[opts.type]
    try:
        return writer(Path(src), Path(dst), opts, columns)
    except RedactionError:
        Path(dst).unlink(missing_ok=True)
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means: cannot redact
        Path(dst).unlink(missing_ok=True)
        first = str(exc).splitlines()[0] if str(exc) else "no detail"
        raise RedactionError(f"{type(exc).__name__}: {first}") from exc


def _header_name(value: object) -> str:
    """A header cell as the readers name the column (trimmed, without a byte-order mark)."""
    return str(value).strip().lstrip("\ufeff").strip()


# -- CSV --------------------------------------------------------------------------------------

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)


def _codec(encoding: str, head: bytes) -> tuple[bytes, str]:
    """(byte-order mark as delivered, codec without BOM handling) for a declared encoding."""
    encoding = encoding.lower()
    if encoding in ("utf-8", "utf8", "utf-8-sig", "utf-16"):
        for bom, codec in _BOMS:
            if head.startswith(bom) and (codec == "utf-8") == encoding.startswith("utf-8"):
                return bom, codec
        if encoding == "utf-16":
            return b"", "utf-16-le"  # no BOM: what Python's utf-16 codec assumes on this platform
        return b"", "utf-8"
    return b"", encoding


def _redact_csv(src: Path, dst: Path, opts: FileOptions, columns: frozenset[str]) -> list[str]:
    with src.open("rb") as handle:
        head = handle.read(1 << 16)
    bom, codec = _codec(opts.encoding, head)
    sample = head[len(bom) :].decode(codec, errors="ignore")
    end = min((i for i in (sample.find("\r"), sample.find("\n")) if i >= 0), default=-1)
    terminator = "\r\n" if sample[end : end + 2] == "\r\n" else (sample[end] if end >= 0 else "\n")
    quote = opts.quote or None
    read_quoting = csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE

    with src.open("rb") as raw:
        raw.seek(len(bom))
        text = io.TextIOWrapper(raw, encoding=codec, newline="")
        last = [""]

        def lines():
            for line in text:
                last[0] = line
                yield line

        reader = csv.reader(
            lines(), delimiter=opts.delimiter, quotechar=quote, quoting=read_quoting
        )
        header = next(reader, None)
        if header is None:
            return []
        drop = [i for i, name in enumerate(header) if _header_name(name) in columns]
        if not drop:
            return []
        quoted_header = quote is not None and all(
            f.strip().startswith(quote) for f in last[0].rstrip("\r\n").split(opts.delimiter)
        )
        keep = [i for i in range(len(header)) if i not in drop]
        with dst.open("xb") as out:
            out.write(bom)
            sink = io.TextIOWrapper(out, encoding=codec, newline="")
            writer = csv.writer(
                sink,
                delimiter=opts.delimiter,
                quotechar=quote,
                quoting=csv.QUOTE_ALL if quoted_header else read_quoting,
                lineterminator=terminator,
            )
            writer.writerow([header[i] for i in keep])
            dropped = set(drop)
            for row in reader:
                writer.writerow([v for i, v in enumerate(row) if i not in dropped])
            sink.flush()
            if not last[0].endswith(("\r", "\n")):  # the original's last line had no break
                out.truncate(out.tell() - len(terminator.encode(codec)))
            sink.detach()
    return [_header_name(header[i]) for i in drop]


# -- XLSX -------------------------------------------------------------------------------------


def _redact_xlsx(src: Path, dst: Path, opts: FileOptions, columns: frozenset[str]) -> list[str]:
    import openpyxl

    book = openpyxl.load_workbook(src)
    if opts.sheet not in book.sheetnames:
        raise RedactionError(f"no sheet named {opts.sheet!r}")
    sheet = book[opts.sheet]
    header = [cell.value for cell in sheet[opts.header_row]] if sheet.max_row else []
    drop = [
        i + 1
        for i, value in enumerate(header)
        if value is not None and _header_name(value) in columns
    ]
    if not drop:
        return []
    removed = [_header_name(header[i - 1]) for i in drop]
    for index in reversed(drop):
        sheet.delete_cols(index)
    with dst.open("xb") as out:
        book.save(out)
    return removed


# -- SAS XPORT v5 -----------------------------------------------------------------------------

_RECORD = 80
_HEADER = b"HEADER RECORD*******"
_MEMBER = _HEADER + b"MEMBER  HEADER RECORD!!!!!!!"
_NAMESTR = _HEADER + b"NAMESTR HEADER RECORD!!!!!!!"
_OBS = _HEADER + b"OBS     HEADER RECORD!!!!!!!"
_LIBRARY = _HEADER + b"LIBRARY HEADER RECORD!!!!!!!"


def _pad(data: bytes) -> bytes:
    return data + b" " * (-len(data) % _RECORD)


def _redact_xport(src: Path, dst: Path, opts: FileOptions, columns: frozenset[str]) -> list[str]:
    data = src.read_bytes()
    if not data.startswith(_LIBRARY):
        raise RedactionError("not a SAS XPORT v5 library (v8 and CPORT files are not supported)")
    records = [data[i : i + _RECORD] for i in range(0, len(data), _RECORD)]
    member_starts = [i for i, r in enumerate(records) if r.startswith(_MEMBER)]
    if not member_starts:
        raise RedactionError("no member (dataset) in the XPORT file")
    out = bytearray(b"".join(records[: member_starts[0]]))
    removed: list[str] = []
    bounds = [*member_starts, len(records)]
    for start, stop in zip(bounds, bounds[1:], strict=False):
        member, names = _redact_member(records[start:stop], columns, encoding=opts.encoding)
        out += member
        removed += [n for n in names if n not in removed]
    if not removed:
        return []
    with dst.open("xb") as handle:
        handle.write(bytes(out))
    return removed


def _redact_member(
    records: list[bytes], columns: frozenset[str], encoding: str
) -> tuple[bytes, list[str]]:
    namestr_length = int(records[0][74:78])  # 140 (136 on VAX/VMS)
    header_at = next(i for i, r in enumerate(records) if r.startswith(_NAMESTR))
    count = int(records[header_at][54:58])
    body = b"".join(records[header_at + 1 :])
    namestrs = [body[i * namestr_length : (i + 1) * namestr_length] for i in range(count)]
    obs_at = header_at + 1 + (-(-count * namestr_length // _RECORD))
    if not records[obs_at].startswith(_OBS):
        raise RedactionError("OBS header record not where the NAMESTR records end")
    region = b"".join(records[obs_at + 1 :])

    variables = []  # (name, position, length, namestr)
    for raw in namestrs:
        length = struct.unpack(">h", raw[4:6])[0]
        name = raw[8:16].decode(encoding).strip()
        position = struct.unpack(">i", raw[84:88])[0]
        variables.append((name, position, length, raw))
    drop = [v for v in variables if v[0] in columns]
    if not drop:
        return b"".join(records), []
    row_length = sum(v[2] for v in variables)
    rows = _row_count(region, row_length)
    keep = [v for v in variables if v[0] not in columns]

    new_namestrs, position = [], 0
    for number, (_, _, length, raw) in enumerate(keep, start=1):
        new_namestrs.append(
            raw[:6] + struct.pack(">h", number) + raw[8:84] + struct.pack(">i", position) + raw[88:]
        )
        position += length
    slices = [(p, p + n) for _, p, n, _ in keep]
    observations = bytearray()
    for r in range(rows):
        row = region[r * row_length : (r + 1) * row_length]
        for a, b in slices:
            observations += row[a:b]

    header = records[header_at]
    header = header[:54] + f"{len(keep):04d}".encode() + header[58:]
    member = b"".join(records[:header_at]) + header
    member += _pad(b"".join(new_namestrs)) + records[obs_at] + _pad(bytes(observations))
    return member, [v[0] for v in drop]


def _row_count(region: bytes, row_length: int) -> int:
    """Observations in a member's data: the data is padded with blanks to 80 bytes, so trailing
    blank "rows" shorter than a record are padding (as SAS and pandas read it)."""
    if row_length == 0:
        return 0
    rows = len(region) // row_length
    while rows and len(region) - (rows - 1) * row_length < _RECORD:
        tail = region[(rows - 1) * row_length :]
        if tail.strip(b" "):
            break
        rows -= 1
    return rows
