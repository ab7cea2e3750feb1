"""core/tables.py: the one Markdown and the one HTML table writer keep every value in its cell."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest

from core.tables import Cell, html_table, markdown_table


def test_markdown_table_has_a_header_a_separator_and_one_line_per_row():
    table = markdown_table(["name", "n"], [("a", 1), ("b", 22)])
    assert table == "| name | n |\n|---|---|\n| a | 1 |\n| b | 22 |"


def test_markdown_numeric_columns_are_right_aligned():
    table = markdown_table(["rule", "count", "note"], [("r", "1,234", "x")], numeric={1})
    assert table.splitlines()[1] == "|---|---:|---|"


def test_markdown_escapes_pipes_and_joins_lines():
    table = markdown_table(["a|b", "text"], [("x | y", "one\ntwo\r\nthree\rfour")])
    assert table.splitlines() == [
        "| a\\|b | text |",
        "|---|---|",
        "| x \\| y | one two three four |",
    ]


def test_markdown_none_is_an_empty_cell_and_other_values_are_str():
    table = markdown_table(["a", "b", "c", "d"], [(None, 0, dt.date(2026, 11, 30), 1.5)])
    assert table.splitlines()[2] == "|  | 0 | 2026-11-30 | 1.5 |"


def test_markdown_keeps_inline_markup_and_has_no_trailing_newline():
    table = markdown_table(["rule"], [["`amount.non_negative`"], ["**total**"]])
    assert table.endswith("| **total** |")
    assert "| `amount.non_negative` |" in table


def test_markdown_table_without_rows_is_header_and_separator():
    assert markdown_table(["a", "b"], []) == "| a | b |\n|---|---|"


@pytest.mark.parametrize("write", [markdown_table, html_table])
def test_a_row_of_the_wrong_length_is_refused(write):
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        write(["a", "b"], [("x", "y"), ("z",)])


class _Cells(HTMLParser):
    """The table's rows as lists of (tag, attributes, text)."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[tuple[str, dict, str]]] = []
        self._cell: tuple[str, dict] | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell, self._text = (tag, dict(attrs)), ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append((*self._cell, self._text))
            self._cell = None

    def handle_data(self, data):
        if self._cell:
            self._text += data


def _parse(html: str) -> list[list[tuple[str, dict, str]]]:
    parser = _Cells()
    parser.feed(html)
    return parser.rows


def test_html_table_shape_header_then_rows():
    html = html_table(["a", "b"], [(1, 2), (3, 4)])
    assert html == (
        "<table><thead><tr><th>a</th><th>b</th></tr></thead>"
        "<tbody><tr><td>1</td><td>2</td></tr><tr><td>3</td><td>4</td></tr></tbody></table>"
    )
    rows = _parse(html)
    assert [[tag for tag, _, _ in row] for row in rows] == [
        ["th", "th"],
        ["td", "td"],
        ["td", "td"],
    ]


def test_html_escapes_text_and_attributes():
    html = html_table(
        ["<b>", "x"],
        [("a < b & c", Cell("v", attrs={"title": 'say "hi" & <go>'}))],
    )
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert "<td>a &lt; b &amp; c</td>" in html
    assert 'title="say &quot;hi&quot; &amp; &lt;go&gt;"' in html
    assert _parse(html)[1][0][2] == "a < b & c"


def test_html_none_is_an_empty_cell():
    assert "<tr><td></td><td>0</td></tr>" in html_table(["a", "b"], [(None, 0)])


def test_html_numeric_columns_and_cell_classes_attributes_and_raw_html():
    html = html_table(
        ["SMO", Cell("feed", css_class="sort")],
        [["A", Cell("1 d", css_class="stale", attrs={"data-feed": "sites"})],
         ["B", Cell("<span>2</span>", raw=True)]],
        numeric={1},
        table_class="scorecard",
    )  # fmt: skip
    assert html.startswith(
        '<table class="scorecard"><thead><tr><th>SMO</th><th class="num sort">feed</th>'
    )
    assert '<td class="num stale" data-feed="sites">1 d</td>' in html
    assert '<td class="num"><span>2</span></td>' in html


def test_html_empty_replaces_a_table_without_rows():
    assert html_table(["a"], [], empty="<p>None.</p>") == "<p>None.</p>"
    assert (
        html_table(["a"], []) == "<table><thead><tr><th>a</th></tr></thead><tbody></tbody></table>"
    )
    assert html_table(["a"], [("x",)], empty="<p>None.</p>").startswith("<table>")
