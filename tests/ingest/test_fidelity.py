"""Fidelity: a delivery is accepted only if every cell was read as the SMO wrote it.

Each test starts from a valid delivery the generator wrote in an SMO's own dialect, changes the
file the way a real export goes wrong, and checks that the gate refuses it whole, naming the
row (and the cell, where there is one), or reads it back exactly. Every case here was accepted
with different values (or crashed the gate) before the gate checked fidelity.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml

from expectations.contracts import RULES
from ingest.gate import check_delivery
from ingest.profiles import ProfileError, load_profile
from synthetic.bad_deliveries import END, _Base, edit_field, edit_sheet, replace_cell
from synthetic.dialects import DIALECTS, write_feed

RECEIVED = dt.datetime(2026, 11, 16, 6)
ENCODING = {"SMO-IBERIA": "cp1252", "SMO-AMERICAS": "utf-8", "SMO-SAKURA": "utf-16"}
DELIMITER = {"SMO-IBERIA": ";", "SMO-AMERICAS": ",", "SMO-SAKURA": "\t"}


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    """(profiles folder, {smo_id: {feed: path}}, the base portfolio): read-only."""
    from synthetic.bad_deliveries import write_valid_deliveries

    out = tmp_path_factory.mktemp("fidelity")
    base = _Base(7)
    profiles = out / "profiles"
    profiles.mkdir()
    for smo in base.portfolio.smos:
        profile = smo.dialect.profile(smo.smo_id)
        (profiles / f"{smo.smo_id}.yaml").write_text(yaml.safe_dump(profile, allow_unicode=True))
    return profiles, write_valid_deliveries(out / "valid"), base


def check(valid, smo_id: str, path: Path, **profile_changes):
    profiles, _, base = valid
    profile_path = profiles / f"{smo_id}.yaml"
    if profile_changes:
        body = yaml.safe_load(profile_path.read_text())
        body["file"] = {**body["file"], **profile_changes}
        profile_path = path.parent / f"{smo_id}-changed.yaml"
        profile_path.write_text(yaml.safe_dump(body, allow_unicode=True))
    return check_delivery(
        path, load_profile(profile_path), received_at=RECEIVED, roster=base.roster(smo_id)
    )


def mutated(valid, tmp_path: Path, smo_id: str, feed: str, change) -> Path:
    """A copy of the valid delivery of (smo_id, feed), with the same name, changed."""
    source = valid[1][smo_id][feed]
    target = tmp_path / source.name
    target.write_bytes(change(source.read_bytes()))
    return target


def field(smo_id: str, column: int, change, line: int = 2):
    return edit_field(DELIMITER[smo_id], ENCODING[smo_id], column, change, line)


def totals(result) -> dict[tuple[str, str | None], int]:
    return {(t.rule, t.column): t.count for t in result.totals}


def rejected_for(result, rule: str) -> list:
    assert not result.accepted and result.frame is None
    assert rule in {t.rule for t in result.totals}, result.problems[:3]
    return [p for p in result.problems if p.rule == rule]


def test_every_valid_delivery_reads_back_exactly_every_column(valid):
    """The reference the mutations are compared with: all columns, in file order."""
    _, written, base = valid
    for smo_id, feeds in written.items():
        for feed, path in feeds.items():
            result = check(valid, smo_id, path)
            assert result.accepted, (smo_id, feed, result.problems[:3])
            assert result.frame.drop("_source_row").equals(base.loaded(smo_id, feed)), feed
            first = 5 if smo_id == "SMO-NORDIC" else 2  # below a 3-row title block and header
            rows = result.frame.get_column("_source_row").to_list()
            assert rows == list(range(first, first + len(rows)))


# -- field counts ------------------------------------------------------------------------------


def test_rows_with_too_few_or_too_many_fields_are_named(valid, tmp_path):
    """A row with a field missing was read with NULLs for it; one with a field too many too."""

    def change(data: bytes) -> bytes:
        lines = data.split(b"\r\n")
        lines[2] = lines[2].rsplit(b",", 1)[0]  # row 3: one field short
        lines[5] += b",surplus"  # row 6: one field over
        lines[7] = lines[7].rsplit(b",", 3)[0]  # row 8: three short
        return b"\r\n".join(lines)

    path = mutated(valid, tmp_path, "SMO-AMERICAS", "subjects", change)
    problems = rejected_for(check(valid, "SMO-AMERICAS", path), "file.ragged_row")
    assert [p.row for p in problems] == [3, 6, 8]
    width = path.read_bytes().split(b"\r\n")[0].count(b",") + 1
    assert f"{width - 1} fields; the header has {width}" in problems[0].message
    assert f"{width + 1} fields" in problems[1].message
    assert f"{width - 3} fields" in problems[2].message


def test_ragged_rows_report_the_first_twenty_and_count_all(valid, tmp_path):
    def change(data: bytes) -> bytes:
        lines = data.split(b"\r\n")
        for i in range(2, 27):  # 25 rows one field short
            lines[i] = lines[i].rsplit(b";", 1)[0]
        return b"\r\n".join(lines)

    path = mutated(valid, tmp_path, "SMO-IBERIA", "visits", change)
    result = check(valid, "SMO-IBERIA", path)
    problems = rejected_for(result, "file.ragged_row")
    assert totals(result)[("file.ragged_row", None)] == 25
    assert [p.row for p in problems] == list(range(3, 23))


def test_a_blank_line_is_a_ragged_row(valid, tmp_path):
    def change(data: bytes) -> bytes:
        lines = data.split(b"\r\n")
        return b"\r\n".join([*lines[:4], b"", *lines[4:]])

    path = mutated(valid, tmp_path, "SMO-AMERICAS", "visits", change)
    problems = rejected_for(check(valid, "SMO-AMERICAS", path), "file.ragged_row")
    assert [p.row for p in problems] == [5]


# -- quoting -----------------------------------------------------------------------------------


def test_unbalanced_quotes_never_merge_rows(valid, tmp_path):
    """Two stray quotes in free text made rows 3-5 one record: rows vanished, and the record
    took another row's severity and dates."""

    def change(data: bytes) -> bytes:
        data = field("SMO-IBERIA", 5, lambda v: '"' + v, line=2)(data)
        return field("SMO-IBERIA", 5, lambda v: v + '"', line=4)(data)

    path = mutated(valid, tmp_path, "SMO-IBERIA", "deviations", change)
    problems = rejected_for(check(valid, "SMO-IBERIA", path), "file.quoting")
    assert [p.row for p in problems] == [3]
    assert "multiline_values" in problems[0].message
    assert problems[0].value.startswith("SYN-")


@pytest.mark.parametrize(
    ("change", "row"),
    [
        (lambda v: v[:4] + '"' + v[4:], 3),  # a quote inside an unquoted value
        (lambda v: '"' + v + '"x', 3),  # text after the closing quote
        (lambda v: '"' + v, 3),  # a quote never closed: the rest of the file would be one value
    ],
    ids=["inside", "after_closing", "never_closed"],
)
def test_malformed_quoting_is_named(valid, tmp_path, change, row):
    path = mutated(
        valid, tmp_path, "SMO-SAKURA", "deviations", field("SMO-SAKURA", 7, change, line=row - 1)
    )
    problems = rejected_for(check(valid, "SMO-SAKURA", path), "file.quoting")
    assert [p.row for p in problems] == [row]


def test_properly_quoted_values_read_back_exactly(valid, tmp_path):
    """Quoting itself is fine: delimiters, doubled quotes and the quote char inside values."""

    def change(data: bytes) -> bytes:
        for line, value in ((2, "Dosing error; wrong kit"), (3, 'SAE "late"'), (4, "plain")):
            quoted = '"' + value.replace('"', '""') + '"'
            data = field("SMO-IBERIA", 5, lambda _, q=quoted: q, line=line)(data)
        return data

    path = mutated(valid, tmp_path, "SMO-IBERIA", "deviations", change)
    result = check(valid, "SMO-IBERIA", path)
    assert result.accepted, result.problems[:3]
    assert result.frame.get_column("term").slice(1, 3).to_list() == [
        "Dosing error; wrong kit",
        'SAE "late"',
        "plain",
    ]


def test_multiline_values_only_where_the_profile_declares_them(valid, tmp_path):
    path = mutated(
        valid,
        tmp_path,
        "SMO-IBERIA",
        "deviations",
        field("SMO-IBERIA", 5, lambda v: f'"{v}\r\nsecond line"', line=3),
    )
    assert [p.row for p in rejected_for(check(valid, "SMO-IBERIA", path), "file.quoting")] == [4]
    result = check(valid, "SMO-IBERIA", path, multiline_values=True)
    assert result.accepted, result.problems[:3]
    expected = valid[2].loaded("SMO-IBERIA", "deviations")
    assert result.frame.height == expected.height
    assert result.frame["term"][2].endswith("\r\nsecond line")
    # Rows as a spreadsheet shows them: one record, one row, whatever its line breaks.
    assert result.frame["_source_row"].to_list() == list(range(2, 2 + expected.height))


def test_a_parser_disagreeing_with_the_lines_is_a_rejection(valid, monkeypatch):
    """The record count of the structural pass is cross-checked with the parser's frame."""
    read_csv = pl.read_csv
    monkeypatch.setattr(pl, "read_csv", lambda *a, **k: read_csv(*a, **k).head(-1))
    result = check(valid, "SMO-AMERICAS", valid[1]["SMO-AMERICAS"]["visits"])
    assert [t.rule for t in result.totals] == ["file.record_count"]


# -- numbers -----------------------------------------------------------------------------------


def test_a_decimal_point_in_a_decimal_comma_file_is_not_100x(valid, tmp_path):
    """`3440.03` under `decimal: ","` was read as 344003."""
    path = mutated(
        valid, tmp_path, "SMO-IBERIA", "payments", field("SMO-IBERIA", 4, lambda v: "3440.03")
    )
    (problem,) = rejected_for(check(valid, "SMO-IBERIA", path), "value.type")
    assert (problem.row, problem.column, problem.value) == (3, "amount", "3440.03")
    assert "decimal separator ','" in problem.message


def test_the_old_decimal_comma_spelling_means_decimal_comma(valid, tmp_path):
    path = mutated(
        valid, tmp_path, "SMO-IBERIA", "payments", field("SMO-IBERIA", 4, lambda v: "3440.03")
    )
    result = check(valid, "SMO-IBERIA", path, decimal_comma=True)
    assert rejected_for(result, "value.type")
    result = check(valid, "SMO-IBERIA", valid[1]["SMO-IBERIA"]["payments"], decimal_comma=True)
    assert result.accepted


@pytest.mark.parametrize("thousands", [".", " ", "'"])
def test_declared_thousands_groups_read_back_exactly(valid, tmp_path, thousands):
    """A dialect with a thousands separator: the generator writes it, its profile declares it."""
    _, _, base = valid
    smo = base.smo_for_id("SMO-IBERIA")
    dialect = dataclasses.replace(smo.dialect, thousands=thousands)
    profile_path = tmp_path / "profile.yaml"
    profile_path.write_text(yaml.safe_dump(dialect.profile(smo.smo_id), allow_unicode=True))
    assert load_profile(profile_path).feeds["payments"].file.thousands == thousands
    study_id, rows = base.rows(smo.smo_id, "payments")
    rows[0]["amount"] = 1234567.5
    path = write_feed(dialect, "payments", tmp_path / dialect.file_name("payments", END), rows)
    assert f"1{thousands}234{thousands}567,50".encode("cp1252") in path.read_bytes()
    result = check_delivery(
        path, load_profile(profile_path), received_at=RECEIVED, roster=base.roster(smo.smo_id)
    )
    assert result.accepted, result.problems[:3]
    assert result.frame["amount"][0] == 1234567.5
    bad = tmp_path / "bad" / path.name
    bad.parent.mkdir()
    wrong_group = f"12{thousands}34567,50"
    bad.write_bytes(field("SMO-IBERIA", 4, lambda v: wrong_group)(path.read_bytes()))
    result = check_delivery(
        bad, load_profile(profile_path), received_at=RECEIVED, roster=base.roster(smo.smo_id)
    )
    assert [p.value for p in rejected_for(result, "value.type")] == [wrong_group]


@pytest.mark.parametrize(
    "spelling", ["inf", "-inf", "+inf", "Infinity", "INF", "nan", "NaN", "-nan", "1e3", "0x10"]
)
@pytest.mark.parametrize("smo_id", ["SMO-AMERICAS", "SMO-IBERIA"])
def test_inf_nan_and_other_spellings_are_never_numbers(valid, tmp_path, smo_id, spelling):
    column = 3 if smo_id == "SMO-AMERICAS" else 4
    path = mutated(valid, tmp_path, smo_id, "payments", field(smo_id, column, lambda v: spelling))
    (problem,) = rejected_for(check(valid, smo_id, path), "value.type")
    assert (problem.column, problem.value) == ("amount", spelling)


def test_an_integer_column_takes_digits_only(valid, tmp_path):
    for bad in ("12.0", "1e2", "+-3", "twelve"):
        path = mutated(
            valid, tmp_path, "SMO-AMERICAS", "sites", field("SMO-AMERICAS", 13, lambda v, b=bad: b)
        )
        (problem,) = rejected_for(check(valid, "SMO-AMERICAS", path), "value.type")
        assert (problem.column, problem.value) == ("target_enrollment", bad)


# -- dates -------------------------------------------------------------------------------------


def test_a_two_digit_year_is_not_the_year_25(valid, tmp_path):
    """`12/11/25` under `%d/%m/%Y` was read as 0025-11-12."""
    path = mutated(
        valid, tmp_path, "SMO-IBERIA", "sites", field("SMO-IBERIA", 8, lambda v: "12/11/25")
    )
    (problem,) = rejected_for(check(valid, "SMO-IBERIA", path), "value.type")
    assert (problem.row, problem.column, problem.value) == (3, "selected_date", "12/11/25")
    assert "%d/%m/%Y" in problem.message


@pytest.mark.parametrize(
    ("smo_id", "feed", "column", "value", "accepted"),
    [
        ("SMO-AMERICAS", "sites", 10, "5-Mar-24", False),  # %d-%b-%Y with a 2-digit year
        ("SMO-AMERICAS", "sites", 10, "5-MAR-2024", True),  # month names in any case
        ("SMO-AMERICAS", "sites", 10, "05-Mar-2024", True),
        ("SMO-AMERICAS", "sites", 10, "5-March-2024", False),
        ("SMO-SAKURA", "subjects", 4, "24/03/05", False),  # %Y/%m/%d
        ("SMO-SAKURA", "subjects", 4, "2024/3/5", True),
        ("SMO-SAKURA", "subjects", 4, "+2024/03/05", False),
        ("SMO-SAKURA", "subjects", 4, "0000/03/05", False),  # no year 0
    ],
)
def test_dates_match_the_declared_format_exactly(
    valid, tmp_path, smo_id, feed, column, value, accepted
):
    path = mutated(valid, tmp_path, smo_id, feed, field(smo_id, column, lambda v: value))
    result = check(valid, smo_id, path)
    parse_failures = [p for p in result.problems if p.rule == "value.type"]
    if accepted:
        assert not parse_failures
    else:
        assert [p.value for p in parse_failures] == [value]


@pytest.mark.parametrize("serial", ["2958466", "99999999", "0", "60", "45000.5", "-3"])
def test_excel_serials_outside_excel_calendar_are_value_type(valid, tmp_path, serial):
    """A serial past 9999-12-31 raised a TypeError in the failure recorder."""
    change = edit_sheet(replace_cell("H", lambda ref: f'<c r="{ref}"><v>{serial}</v></c>'))
    path = mutated(valid, tmp_path, "SMO-NORDIC", "visits", change)
    (problem,) = rejected_for(check(valid, "SMO-NORDIC", path), "value.type")
    assert (problem.column, problem.value) == ("crf_entry_date", serial)
    assert "Excel serial" in problem.message


def test_excel_serials_in_range_are_excel_dates(valid, tmp_path):
    change = edit_sheet(replace_cell("H", lambda ref: f'<c r="{ref}"><v>61</v></c>'))
    path = mutated(valid, tmp_path, "SMO-NORDIC", "visits", change)
    result = check(valid, "SMO-NORDIC", path)
    # Serial 61 is 1900-03-01 (Excel counts a 29 February 1900): read as that date, which the
    # gate then finds before the visit and before any plausible study window.
    assert {t.rule for t in result.totals} == {"order.actual_le_crf_entry", "date.before_window"}
    order = next(p for p in result.problems if p.rule == "order.actual_le_crf_entry")
    assert "crf_entry_date=1900-03-01" in order.value


def test_the_failure_recorder_never_raises_on_dates_python_cannot_hold():
    from ingest.gate import _cell_text

    frame = pl.DataFrame({"d": pl.Series([4_000_000], dtype=pl.Int32).cast(pl.Date)})
    assert _cell_text(frame, 0, "d") == "+12921-08-18"


# -- XLSX cells --------------------------------------------------------------------------------


@pytest.mark.parametrize("error", ["#N/A", "#REF!", "#DIV/0!", "#VALUE!", "#NAME?"])
def test_xlsx_error_cells_are_named_with_sheet_cell_and_column(valid, tmp_path, error):
    """Error cells were read as empty, and an empty optional amount was accepted."""
    cell = f'<c r="{{ref}}" t="e"><f>1/0</f><v>{error}</v></c>'
    change = edit_sheet(replace_cell("G", lambda ref: cell.format(ref=ref)))
    path = mutated(valid, tmp_path, "SMO-NORDIC", "payments", change)
    (problem,) = rejected_for(check(valid, "SMO-NORDIC", path), "value.error_cell")
    assert problem.column == "holdback_amount" and problem.value == error
    assert f"Sheet 'Payments', cell G{problem.row} (column 'Holdback')" in problem.message


def test_xlsx_formula_without_a_saved_value(valid, tmp_path):
    change = edit_sheet(replace_cell("G", lambda ref: f'<c r="{ref}"><f>E{ref[1:]}*0.1</f></c>'))
    path = mutated(valid, tmp_path, "SMO-NORDIC", "payments", change)
    (problem,) = rejected_for(check(valid, "SMO-NORDIC", path), "value.formula_without_value")
    assert problem.column == "holdback_amount"
    assert f"cell G{problem.row} (column 'Holdback')" in problem.message
    assert problem.value.startswith("=E")


def test_xlsx_formula_placeholder_of_a_writer_that_does_not_calculate(valid, tmp_path):
    """xlsxwriter stores 0 as every formula's value (and asks Excel to recalculate on open):
    the amount read as 0."""
    change = edit_sheet(
        replace_cell("E", lambda ref: f'<c r="{ref}"><f>C{ref[1:]}*2</f><v>0</v></c>')
    )
    path = mutated(valid, tmp_path, "SMO-NORDIC", "payments", change)
    (problem,) = rejected_for(check(valid, "SMO-NORDIC", path), "value.formula_without_value")
    assert (problem.row, problem.column) == (5, "amount")


def test_xlsx_formulas_with_computed_values_are_read_as_saved(valid, tmp_path):
    """A workbook Excel saved: formulas carry their computed values, and those are the data."""
    import io
    import re
    import zipfile

    def change(data: bytes) -> bytes:
        data = edit_sheet(
            lambda xml: re.sub(
                r'<c r="(E\d+)"><v>([^<]*)</v></c>',
                r'<c r="\1"><f>ROUND(\2,2)</f><v>\2</v></c>',
                xml,
            )
        )(data)
        source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
        with source, zipfile.ZipFile(out, "w") as target:
            for item in source.infolist():
                content = source.read(item.filename)
                if item.filename == "xl/workbook.xml":
                    content = content.replace(b' fullCalcOnLoad="1"', b"")
                target.writestr(item, content)
        return out.getvalue()

    path = mutated(valid, tmp_path, "SMO-NORDIC", "payments", change)
    result = check(valid, "SMO-NORDIC", path)
    assert result.accepted, result.problems[:3]
    assert result.frame.drop("_source_row").equals(valid[2].loaded("SMO-NORDIC", "payments"))


def test_xlsx_rows_are_spreadsheet_rows_across_title_block_and_blank_rows(tmp_path):
    """Rows named in reports are the rows Excel shows, below a title block and blank rows."""
    import xlsxwriter

    dialect = DIALECTS["nordic"]
    profile_path = tmp_path / "nordic.yaml"
    profile_path.write_text(yaml.safe_dump(dialect.profile("SMO-N"), allow_unicode=True))
    path = tmp_path / dialect.file_name("deviations", END)
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Deviations")
    sheet.write(0, 0, "Nordic Site Services - deviations")
    header = dialect.header("deviations")
    sheet.write_row(3, 0, header)  # row 4
    good = ["S1", "D1", "X1", "", "Eligibility", "", "Minor", "2026-01-05", "", "", ""]
    for excel_row in (5, 6, 9, 12):  # rows 7-8 and 10-11 left blank
        row = list(good)
        row[1] = f"D{excel_row}"
        row[6] = "IMPORTANT"
        row[7] = "2026-01-05" if excel_row != 12 else "5 Jan 2026"
        sheet.write_row(excel_row - 1, 0, row)
    sheet.write_formula("E9", "#N/A", None, "#N/A")  # an error cell at E9
    book.close()
    result = check_delivery(path, load_profile(profile_path), received_at=RECEIVED, roster=None)
    found = {(p.rule, p.row) for p in result.problems}
    assert ("value.error_cell", 9) in found
    assert ("value.type", 12) in found  # the date in the wrong format
    error = next(p for p in result.problems if p.rule == "value.error_cell")
    assert "cell E9 (column 'Category')" in error.message


# -- control characters -----------------------------------------------------------------------


CONTROLS = [
    (smo_id, char)
    for smo_id in ("SMO-IBERIA", "SMO-AMERICAS", "SMO-SAKURA", "SMO-NORDIC")
    for char in ("\x00", "\x01", "\x1b", "\x7f", "\x85")
    if (smo_id, char) != ("SMO-IBERIA", "\x85")  # cp1252 has no U+0085 (0x85 is an ellipsis)
]


@pytest.mark.parametrize(("smo_id", "char"), CONTROLS)
def test_control_characters_are_rejected_in_every_encoding(valid, tmp_path, smo_id, char):
    """A NUL inside a field of a cp1252 (or UTF-16) file was stored."""
    if smo_id == "SMO-NORDIC":
        escaped = f"_x{ord(char):04X}_"
        cell = f'<c r="{{ref}}" t="inlineStr"><is><t>Ab{escaped}cd</t></is></c>'
        change = edit_sheet(replace_cell("C", lambda ref: cell.format(ref=ref)))
        column = "subject_id"
    else:
        change = field(smo_id, 2 if smo_id != "SMO-AMERICAS" else 1, lambda v: v[:2] + char + v[2:])
        column = "subject_id"
    path = mutated(valid, tmp_path, smo_id, "subjects", change)
    problems = rejected_for(check(valid, smo_id, path), "value.control_character")
    assert {(p.column, p.row) for p in problems} <= {(column, 3), (column, 5)}
    assert f"\\x{ord(char):02x}" in problems[0].value  # shown visibly in the report


def test_a_nul_byte_in_a_cp1252_file_at_byte_level(valid, tmp_path):
    def change(data: bytes) -> bytes:
        at = data.index(b"\r\n", data.index(b"\r\n") + 2) + 10
        return data[:at] + b"\x00" + data[at:]

    path = mutated(valid, tmp_path, "SMO-IBERIA", "visits", change)
    (problem,) = rejected_for(check(valid, "SMO-IBERIA", path), "value.control_character")
    assert problem.row == 3


# -- the gate never raises --------------------------------------------------------------------


def test_an_unforeseen_exception_rejects_the_file_and_the_run_goes_on(valid, monkeypatch):
    import ingest.gate

    def broken(*args, **kwargs):
        raise ZeroDivisionError("something nobody foresaw")

    monkeypatch.setattr(ingest.gate, "_to_canonical", broken)
    path = valid[1]["SMO-IBERIA"]["subjects"]
    result = check(valid, "SMO-IBERIA", path)
    assert [t.rule for t in result.totals] == ["file.unreadable"]
    assert "ZeroDivisionError: something nobody foresaw" in result.problems[0].message
    assert result.frame is None and result.feed == "subjects" and len(result.sha256) == 64


# -- profiles and docs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "key"),
    [
        ({"decimal": ";"}, "file.decimal"),
        ({"decimal": ",", "thousands": ","}, "file.thousands"),
        ({"thousands": "12"}, "file.thousands"),
        ({"decimal_comma": True, "decimal": "."}, "file.decimal"),
        ({"decimal_comma": "yes"}, "file.decimal_comma"),
        ({"type": "xlsx", "sheet": "S", "decimal": ","}, "file.decimal"),
        ({"multiline_values": "sometimes"}, "file.multiline_values"),
    ],
)
def test_number_options_are_validated(tmp_path, file, key):
    body = {
        "smo_id": "SMO-T",
        "profile_version": 1,
        "file": {"type": "csv", **file},
        "date_format": "%d/%m/%Y",
        "feeds": {
            "subjects": {"file_pattern": "s_{delivery_date:%Y%m%d}.csv", "scope": "all_studies"}
        },
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    assert raised.value.key == key


@pytest.mark.parametrize("fmt", ["%d/%m/%Y %H:%M", "%j/%Y", "%d/%m/%Y%", "%e.%m.%Y"])
def test_date_formats_the_gate_cannot_match_exactly_are_refused(tmp_path, fmt):
    body = {
        "smo_id": "SMO-T",
        "profile_version": 1,
        "date_format": fmt,
        "feeds": {
            "subjects": {"file_pattern": "s_{delivery_date:%Y%m%d}.csv", "scope": "all_studies"}
        },
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(body))
    with pytest.raises(ProfileError, match="date_format"):
        load_profile(path)


def test_docs_list_every_rule_id():
    from core.settings import PROJECT_ROOT

    text = (PROJECT_ROOT / "docs" / "profiles.md").read_text()
    section = text[text.index("## What the gate checks") :]
    missing = [
        rule
        for rule in RULES
        if f"`{rule}`" not in section and f"`{rule.split('.')[0]}.*`" not in section
    ]
    assert not missing


@pytest.mark.parametrize(
    ("options", "dtype", "good", "bad"),
    [
        ({}, "float", ["3440.03", "-1", "+0.5", "12"], ["3440,03", "1e3", "inf", ".5", "5.", "1 000"]),
        ({"decimal": ","}, "float", ["3440,03", "12"], ["3440.03", "1.234,5", "nan"]),
        ({"decimal": ",", "thousands": "."}, "float", ["1.234,5", "1234,5", "1.234.567"], ["1.23,5", "12.34", "1,234.5"]),
        ({}, "int", ["12", "-3"], ["12.0", "1e2", "1,200"]),
        ({"type": "xlsx"}, "int", ["12", "12.0"], ["12.5", "1e2"]),
        ({"type": "xlsx"}, "float", ["0.0000001", "100000000000000000000"], ["1e3", "3,50", "NaN"]),
        ({"type": "xport"}, "float", ["1e-7", "1e+20", "3.1"], ["nan", "inf", "3,1"]),
    ],
)  # fmt: skip
def test_number_formats_are_exact(options, dtype, good, bad):
    from ingest.gate import number_regex
    from ingest.profiles import FileOptions

    regex = number_regex(FileOptions(**options), dtype)
    matched = pl.Series(good + bad).str.contains(regex).to_list()
    assert matched == [True] * len(good) + [False] * len(bad)
