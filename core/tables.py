"""The project's one Markdown table writer and one HTML table writer.

Every table the project writes for people goes through these: Dagster metadata and rejection
reports (`markdown_table`), the oversight report (`html_table`), the benchmark summary. Cell
values are anything: `None` is an empty cell, everything else is `str()`-ed and escaped, so a
value can never break the table (a `|` or newline in Markdown, `<` or `&` in HTML). Numbers are
formatted by the caller (`f"{n:,}"`), which knows their unit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _check_shape(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list:
    rows = [list(row) for row in rows]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells for {len(header)} columns: {row!r}")
    return rows


def markdown_cell(value: object) -> str:
    """One Markdown table cell: `|` escaped, line breaks as spaces (a cell is one line)."""
    text = _text(value).replace("|", "\\|")
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def markdown_table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Collection[int] = (),
) -> str:
    """A GitHub-flavoured Markdown table, one line per row, no trailing newline.

    `numeric`: indexes of the columns to right-align (`---:`). Cells may hold inline Markdown
    (`**bold**`, `` `code` ``); only `|` and line breaks are escaped.
    """
    rows = _check_shape(header, rows)
    lines = [
        "| " + " | ".join(markdown_cell(h) for h in header) + " |",
        "|" + "".join("---:|" if i in numeric else "---|" for i in range(len(header))),
    ]
    lines += ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class Cell:
    """An HTML table cell (`<td>` or `<th>`) that needs more than its text.

    value: the cell's content, escaped unless `raw` (then it is trusted HTML, built by the
      caller with its own escaping). None is empty.
    css_class: classes added to the cell's `class` attribute (after the column's `num`).
    attrs: further attributes in order (`data-*`, `title`); values are escaped.
    """

    value: object = None
    css_class: str = ""
    attrs: Mapping[str, object] = field(default_factory=dict)
    raw: bool = False


def _html_cell(tag: str, cell: object, numeric: bool) -> str:
    if not isinstance(cell, Cell):
        cell = Cell(cell)
    classes = " ".join(c for c in ("num" if numeric else "", cell.css_class) if c)
    attrs = ([("class", classes)] if classes else []) + list(cell.attrs.items())
    opening = "".join(f' {name}="{escape(_text(value))}"' for name, value in attrs)
    content = _text(cell.value) if cell.raw else escape(_text(cell.value))
    return f"<{tag}{opening}>{content}</{tag}>"


def html_table(
    header: Sequence[object],
    rows: Iterable[Sequence[object]],
    *,
    numeric: Collection[int] = (),
    table_class: str = "",
    empty: str | None = None,
) -> str:
    """An HTML `<table>` with a `<thead>` row and one `<tbody>` row per row, on one line.

    Header and row cells are plain values (escaped) or `Cell`s (extra classes, attributes,
    trusted HTML). `numeric`: indexes of the columns whose `<th>` and `<td>` get class `num`
    (right-aligned by the page's stylesheet). `table_class`: the table's class attribute.
    `empty`: returned instead of the table when there are no rows (None: an empty table).
    """
    rows = _check_shape(header, rows)
    if not rows and empty is not None:
        return empty
    head = "".join(_html_cell("th", h, i in numeric) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(_html_cell("td", v, i in numeric) for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    opening = f'<table class="{escape(table_class)}">' if table_class else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
