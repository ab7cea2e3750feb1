"""Property: however a delivery is corrupted, the gate rejects it or loads exactly what the
generator wrote. Never silently different, never an exception.

Each example takes one valid delivery (any of the four dialects, any of the six feeds: the
files `write_valid_deliveries` writes) and applies one random corruption an export or a
transfer can cause: a field dropped or added, a stray quote, a row cut short, a NUL or another
control character, a delimiter swapped, a huge line, a decimal separator swapped, a two-digit
year, `inf`/`nan` as a number, a non-encodable byte; in a workbook an error cell, a formula
without a computed value, a text cell in a numeric column, an Excel serial outside the
calendar. If the gate accepts the result, its typed frame must equal `_Base.loaded` (the
generator's rows for that file) in every column and row.

The default run is small and deterministic (40 examples, derandomized, no example database).
A longer, random run (1000 examples, or SMO_HYPOTHESIS_EXAMPLES):

    SMO_HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/ingest/test_fidelity_property.py \\
        --hypothesis-show-statistics
"""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import zipfile

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from expectations.feeds import FEEDS
from ingest.gate import check_delivery
from ingest.profiles import load_profile
from synthetic.bad_deliveries import _Base, write_valid_deliveries

RECEIVED = dt.datetime(2026, 11, 16, 6)
PROFILES = {
    "default": settings(
        max_examples=40,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    ),
    "long": settings(
        max_examples=int(os.environ.get("SMO_HYPOTHESIS_EXAMPLES", "1000")),
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    ),
}
PROFILE = PROFILES[os.environ.get("SMO_HYPOTHESIS_PROFILE", "default")]

#: C0 controls but tab/LF/CR, DEL, and the C1 controls.
CONTROLS = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)]
CONTROLS += [chr(c) for c in range(0x80, 0xA0)]
NOT_NUMBERS = ["inf", "-inf", "+inf", "Infinity", "-Infinity", "INF", "nan", "NaN", "-nan",
               "NAN", "1e3", "1E-2", "0x1A", "1_000", "∞", "١٢"]  # fmt: skip
XLSX_ERRORS = ["#N/A", "#REF!", "#DIV/0!", "#VALUE!", "#NAME?", "#NUM!", "#NULL!"]


@pytest.fixture(scope="module")
def deliveries(tmp_path_factory):
    """[(smo_id, feed, dialect, valid bytes, file name, profile, roster, expected frame)]."""
    out = tmp_path_factory.mktemp("property")
    base = _Base(7)
    written = write_valid_deliveries(out / "valid")
    cases = []
    for smo in base.portfolio.smos:
        profile_path = out / f"{smo.smo_id}.yaml"
        profile_path.write_text(yaml.safe_dump(smo.dialect.profile(smo.smo_id), allow_unicode=True))
        profile = load_profile(profile_path)
        for feed, path in written[smo.smo_id].items():
            cases.append(
                (smo.smo_id, feed, smo.dialect, path.read_bytes(), path.name, profile,
                 base.roster(smo.smo_id), base.loaded(smo.smo_id, feed))
            )  # fmt: skip
    return _Deliveries(out, cases)


class _Deliveries(tuple):
    """(folder, cases), with a short repr for hypothesis' falsifying-example report."""

    def __new__(cls, out, cases):
        return super().__new__(cls, (out, cases))

    def __repr__(self) -> str:
        return f"<{len(self[1])} valid deliveries>"


# -- CSV corruptions (on the decoded text, written back in the file's own encoding) ------------


def _dtypes(dialect, feed: str) -> list[str]:
    """The canonical type of each field, in the file's column order ('extra' for dropped)."""
    fd = dialect.feeds[feed]
    types = []
    for column in fd.headers:
        dtype = FEEDS[feed].column(column).dtype
        fmt = fd.date_formats.get(column, dialect.date_format)
        types.append("serial" if dtype == "date" and fmt == "excel_serial" else dtype)
    return types + ["extra"] * len(fd.extra_columns)


def _csv_mutation(draw, dialect, feed: str, data: bytes) -> tuple[str, bytes]:
    encoding, d = dialect.encoding, dialect.delimiter
    text = data.decode(encoding)
    lines = text.split("\r\n")  # the last element is "" (the file ends with a line break)
    i = draw(st.integers(1, len(lines) - 2), label="line")
    fields = lines[i].split(d)
    types = _dtypes(dialect, feed)
    kind = draw(
        st.sampled_from(
            ["drop_field", "add_field", "stray_quote", "truncate", "control", "nul", "swap_delimiter",
             "huge_line", "padding", "decimal_swap", "two_digit_year", "not_a_number", "blank_line",
             "bad_byte"]
        ),
        label="kind",
    )  # fmt: skip

    def field_of(kinds: tuple[str, ...]) -> int | None:
        options = [j for j, t in enumerate(types) if t in kinds and fields[j]]
        return draw(st.sampled_from(options), label="field") if options else None

    if kind == "drop_field":
        j = draw(st.integers(0, len(fields) - 1), label="field")
        del fields[j]
    elif kind == "add_field":
        j = draw(st.integers(0, len(fields)), label="field")
        fields.insert(j, draw(st.text("abc 123-/", max_size=8), label="value"))
    elif kind == "stray_quote":
        at = draw(st.integers(0, len(lines[i])), label="at")
        lines[i] = lines[i][:at] + '"' + lines[i][at:]
        fields = lines[i].split(d)
    elif kind == "truncate":  # cut strictly inside a row
        start = len("\r\n".join(lines[:i])) + 2
        end = start + len(lines[i]) + 1  # up to (not including) the line feed
        at = draw(st.integers(start + 1, end), label="at")
        raw = text[:at].encode(encoding)
        # Also mid-character, as long as something of the row is left.
        cut = draw(st.integers(0, 1), label="odd_byte") if at > start + 1 else 0
        return kind, raw[: len(raw) - cut]
    elif kind in ("control", "nul"):
        allowed = [c for c in CONTROLS if _encodable(c, encoding)]
        char = "\x00" if kind == "nul" else draw(st.sampled_from(allowed), label="char")
        at = draw(st.integers(0, len(lines[i])), label="at")
        lines[i] = lines[i][:at] + char + lines[i][at:]
        fields = lines[i].split(d)
    elif kind == "swap_delimiter":
        other = draw(st.sampled_from([c for c in (",", ";", "\t", "|") if c != d]), label="to")
        j = draw(st.integers(0, max(0, len(fields) - 2)), label="field")
        fields[j : j + 2] = [fields[j] + other + fields[j + 1]] if len(fields) > 1 else fields
    elif kind == "huge_line":
        size = draw(st.integers(100_000, 1_000_000), label="size")
        junk = draw(st.sampled_from(["x", "ab12 ", "é"]), label="junk")
        lines.insert(i, (junk * size)[:size])
        return kind, ("\r\n".join(lines)).encode(encoding)
    elif kind == "padding":  # whitespace around a value: trimmed, or refused
        j = draw(st.integers(0, len(fields) - 1), label="field")
        pad = " " * draw(st.integers(1, 200_000), label="pad")
        fields[j] = pad + fields[j] + draw(st.sampled_from(["", pad]), label="right")
    elif kind == "decimal_swap":
        j = field_of(("float",))
        if j is None:
            return "noop", data
        fields[j] = fields[j].translate({ord("."): ",", ord(","): "."})
    elif kind == "two_digit_year":
        j = field_of(("date",))
        if j is None:
            return "noop", data
        fields[j] = re.sub(r"(?<![0-9])[0-9]{2}([0-9]{2})(?![0-9])", r"\1", fields[j], count=1)
    elif kind == "not_a_number":
        j = field_of(("float", "int", "serial"))
        if j is None:
            return "noop", data
        spellings = [v for v in NOT_NUMBERS if _encodable(v, encoding)]
        fields[j] = draw(st.sampled_from(spellings), label="value")
    elif kind == "blank_line":
        lines.insert(i, "")
        return kind, ("\r\n".join(lines)).encode(encoding)
    elif kind == "bad_byte":  # bytes the declared encoding cannot decode
        encoded = "\r\n".join(lines).encode(encoding)
        at = len("\r\n".join(lines[:i]).encode(encoding)) + 2
        junk = {"cp1252": b"\x81", "utf-8-sig": b"\xff\xfe\xfd", "utf-16": b"\x00\xd8A\x00"}
        return kind, encoded[:at] + junk[encoding] + encoded[at:]
    if kind not in ("stray_quote", "control", "nul"):
        lines[i] = d.join(fields)
    return kind, "\r\n".join(lines).encode(encoding)


def _encodable(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


# -- XLSX corruptions (on the worksheet's XML) -------------------------------------------------


def _xlsx_mutation(draw, dialect, feed: str, data: bytes) -> tuple[str, bytes]:
    book = zipfile.ZipFile(io.BytesIO(data))
    xml = book.read("xl/worksheets/sheet1.xml").decode("utf-8")
    types = _dtypes(dialect, feed)
    first = dialect.header_row + 1
    cells = [
        (m.group(0), m.start(), m.group(1), int(m.group(2)))
        for m in re.finditer(r'<c r="([A-Z]+)(\d+)"[^>]*?(?:/>|>.*?</c>)', xml)
        if int(m.group(2)) >= first
    ]
    kind = draw(
        st.sampled_from(
            ["error_cell", "formula", "formula_placeholder", "control", "not_a_number",
             "text_decimal", "serial", "two_digit_year", "truncate"]
        ),
        label="kind",
    )  # fmt: skip
    if kind == "truncate":
        return kind, data[: draw(st.integers(1, len(data) - 1), label="at")]

    def cell_of(kinds: tuple[str, ...] | None):
        options = [c for c in cells if kinds is None or types[_column_index(c[2])] in kinds]
        return draw(st.sampled_from(options), label="cell") if options else None

    numeric = ("float", "int", "serial")
    target = cell_of({"not_a_number": numeric, "text_decimal": ("float",), "serial": ("serial", "date"),
                      "two_digit_year": ("date",)}.get(kind))  # fmt: skip
    if target is None:
        return "noop", data
    old, at, letters, row = target
    ref = f"{letters}{row}"
    style = re.search(r' s="\d+"', old)
    style = style.group(0) if style else ""
    if kind == "error_cell":
        new = f'<c r="{ref}" t="e"><v>{draw(st.sampled_from(XLSX_ERRORS), label="error")}</v></c>'
    elif kind == "formula":
        new = f'<c r="{ref}"{style}><f>A{row}&amp;B{row}</f></c>'
    elif kind == "formula_placeholder":
        new = f'<c r="{ref}"{style}><f>SUM(A{row}:B{row})</f><v>0</v></c>'
    elif kind == "control":
        char = draw(st.sampled_from(CONTROLS), label="char")
        new = f'<c r="{ref}" t="inlineStr"><is><t>Ab_x{ord(char):04X}_c</t></is></c>'
    elif kind == "not_a_number":
        value = draw(st.sampled_from(NOT_NUMBERS), label="value")
        new = f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'
    elif kind == "text_decimal":
        value = re.search(r"<v>([^<]*)</v>", old)
        text = (value.group(1) if value else "1.5").replace(".", ",")
        new = f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'
    elif kind == "serial":
        serial = draw(
            st.sampled_from(["0", "60", "-1", "2958466", "45000.25", "1e9", "99999999999"]),
            label="serial",
        )
        new = f'<c r="{ref}"{style}><v>{serial}</v></c>'
    else:  # two_digit_year: a text date the way a person types it
        new = f'<c r="{ref}" t="inlineStr"><is><t>26-03-05</t></is></c>'
    xml = xml[:at] + new + xml[at + len(old) :]
    out = io.BytesIO()
    with book, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target_book:
        for item in book.infolist():
            content = book.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = xml.encode("utf-8")
            target_book.writestr(item, content)
    return kind, out.getvalue()


def _column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + ord(char) - ord("A") + 1
    return index - 1


# -- the property ------------------------------------------------------------------------------


@PROFILE
@given(data=st.data())
def test_a_corrupted_delivery_is_rejected_or_read_exactly(deliveries, data):
    out, cases = deliveries
    names = [f"{case[0]}/{case[1]}" for case in cases]
    chosen = data.draw(st.sampled_from(names), label="delivery")
    smo_id, feed, dialect, valid, name, profile, roster, expected = cases[names.index(chosen)]
    mutate = _xlsx_mutation if dialect.file_type == "xlsx" else _csv_mutation
    kind, corrupted = mutate(data.draw, dialect, feed, valid)
    folder = out / "examples"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(corrupted)
    result = check_delivery(path, profile, received_at=RECEIVED, roster=roster)  # never raises
    event(f"{kind}: " + ("accepted" if result.accepted else result.totals[0].rule))
    if not result.accepted:
        assert result.frame is None
        assert all(p.message for p in result.problems)
        return
    # Accepted: every value must be the one the generator wrote, row for row.
    got = result.frame.drop("_source_row")
    assert got.equals(expected), f"{kind} on {smo_id}/{feed} was read with different values"
