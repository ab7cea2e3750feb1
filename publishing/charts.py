"""Static SVG charts for the oversight report: no JavaScript, no fonts or libraries to fetch.

Every chart is a <figure data-chart="..."> holding one <svg> with a title, two axis labels (with
units) and marks; the report test checks exactly that structure in a real browser. A chart may
also carry a text alternative (`<desc>`, e.g. every group's share in `share_bars`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 560, 300
MARGIN = {"left": 64, "right": 16, "top": 48, "bottom": 48}
LEGEND_Y = 32
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
RAG_COLOURS = {"red": "#c62828", "amber": "#ef8f00", "green": "#2e7d32"}

Number = float | int
X = Number | dt.date


@dataclass
class Series:
    name: str
    points: Sequence[tuple[X, Number]]
    colour: str = PALETTE[0]
    dashed: bool = False


@dataclass
class Band:
    """A shaded area between two lines sharing x values (e.g. a P10-P90 forecast fan)."""

    name: str
    x: Sequence[X]
    low: Sequence[Number]
    high: Sequence[Number]
    colour: str = PALETTE[0]


@dataclass
class Scatter:
    name: str
    points: Sequence[tuple[Number, Number, str | None, str | None]]  # x, y, label, flag


@dataclass
class _Scale:
    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.start + (value - self.low) / span * (self.end - self.start)


def _num(value: X) -> float:
    return float(value.toordinal()) if isinstance(value, dt.date) else float(value)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _format(value: float, *, dates: bool = False) -> str:
    if dates:
        return dt.date.fromordinal(int(round(value))).strftime("%d %b %y")
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.3g}k"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _date_ticks(low: float, high: float, count: int = 5) -> list[float]:
    step = max(1, round((high - low) / count))
    return [low + i * step for i in range(count + 1) if low + i * step <= high + 0.5]


class _Canvas:
    """One chart's SVG: frame, axes and the marks added to it."""

    def __init__(
        self,
        chart_id: str,
        title: str,
        x_label: str,
        y_label: str,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        *,
        x_dates: bool = False,
        x_ticks: Sequence[tuple[float, str]] | None = None,
        height: int = HEIGHT,
        y_tick_labels: bool = True,
    ):
        self.chart_id, self.title = chart_id, title
        self.height = height
        self.x_dates = x_dates
        left, right = MARGIN["left"], WIDTH - MARGIN["right"]
        top, bottom = MARGIN["top"], height - MARGIN["bottom"]
        y_ticks = nice_ticks(*y_range)
        self.y = _Scale(min(y_ticks[0], y_range[0]), max(y_ticks[-1], y_range[1]), bottom, top)
        if x_ticks is None:
            values = _date_ticks(*x_range) if x_dates else nice_ticks(*x_range)
            x_ticks = [(v, _format(v, dates=x_dates)) for v in values]
        low = min([x_range[0], *(v for v, _ in x_ticks)])
        high = max([x_range[1], *(v for v, _ in x_ticks)])
        self.x = _Scale(low, high, left, right)
        self.parts: list[str] = []
        grid = []
        for value in y_ticks if y_tick_labels else []:
            y = self.y(value)
            grid.append(
                f'<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{_format(value)}</text>"
            )
        for value, text in x_ticks:
            x = self.x(value)
            grid.append(
                f'<line class="tick-mark" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom}" '
                f'y2="{bottom + 4}"/><text class="tick" x="{x:.1f}" y="{bottom + 16}" '
                f'text-anchor="middle">{escape(text)}</text>'
            )
        self.frame = (
            "".join(grid)
            + f'<line class="axis" x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}"/>'
            + f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{bottom}"/>'
            + f'<text class="chart-title" x="{WIDTH / 2}" y="18" text-anchor="middle">'
            f"{escape(title)}</text>"
            + f'<text class="axis-label x-label" x="{(left + right) / 2}" y="{height - 8}" '
            f'text-anchor="middle">{escape(x_label)}</text>'
            + f'<text class="axis-label y-label" transform="translate(14 {(top + bottom) / 2}) '
            f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
        )

    def point(self, x: X, y: Number) -> str:
        return f"{self.x(_num(x)):.1f},{self.y(float(y)):.1f}"

    def add(self, svg: str) -> None:
        self.parts.append(svg)

    def render(
        self, legend: Sequence[tuple[str, str, bool]] = (), note: str = "", desc: str = ""
    ) -> str:
        """The figure; `desc`: the chart's text alternative (`<desc>`), for screen readers."""
        items = []
        x = MARGIN["left"] + 8
        for name, colour, dashed in legend:
            dash = ' stroke-dasharray="5 3"' if dashed else ""
            items.append(
                f'<g class="legend-item"><line x1="{x}" x2="{x + 18}" y1="{LEGEND_Y}" '
                f'y2="{LEGEND_Y}" stroke="{colour}" stroke-width="3"{dash}/>'
                f'<text class="legend" x="{x + 22}" y="{LEGEND_Y + 4}">{escape(name)}</text>'
                "</g>"
            )
            x += 30 + 6.5 * len(name)
        described = f' aria-describedby="{self.chart_id}-desc"' if desc else ""
        svg = (
            f'<svg viewBox="0 0 {WIDTH} {self.height}" role="img" '
            f'aria-labelledby="{self.chart_id}-title"{described} '
            'xmlns="http://www.w3.org/2000/svg">'
            f'<title id="{self.chart_id}-title">{escape(self.title)}</title>'
            + (f'<desc id="{self.chart_id}-desc">{escape(desc)}</desc>' if desc else "")
            + f"{self.frame}{''.join(self.parts)}{''.join(items)}</svg>"
        )
        caption = f"<figcaption>{escape(note)}</figcaption>" if note else ""
        return (
            f'<figure class="chart" id="{self.chart_id}" data-chart="{self.chart_id}">'
            f"{svg}{caption}</figure>"
        )


def _data_x(x: X) -> str:
    """An x value as a data attribute: ISO date or the number."""
    return x.isoformat() if isinstance(x, dt.date) else repr(float(x))


def _extent(values: Sequence[float], *, include_zero: bool = True) -> tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return (0.0, 1.0)
    low, high = min(values), max(values)
    if include_zero:
        low = min(low, 0.0)
    if high == low:
        high = low + 1.0
    return (low, high)


def empty_chart(chart_id: str, title: str, x_label: str, y_label: str, message: str) -> str:
    """A chart with axes and a message where there is nothing to plot (kept, so every chart
    the report promises is present and says why it is empty)."""
    canvas = _Canvas(chart_id, title, x_label, y_label, (0, 1), (0, 1))
    canvas.add(
        f'<text class="empty mark" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">'
        f"{escape(message)}</text>"
    )
    return canvas.render()


def _known(band: Band) -> Band:
    """The band where both edges have a value."""
    kept = [(x, lo, hi) for x, lo, hi in zip(band.x, band.low, band.high, strict=True)
            if lo is not None and hi is not None]  # fmt: skip
    return dataclasses.replace(
        band, x=[k[0] for k in kept], low=[k[1] for k in kept], high=[k[2] for k in kept]
    )


#: Vertical room (px) a reference line's text label needs before another may be drawn.
LABEL_GAP = 11.0


def line_chart(
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[Series],
    *,
    bands: Sequence[Band] = (),
    hlines: Sequence[tuple[Number, str, str]] = (),
    x_dates: bool = True,
    note: str = "",
    markers: bool = False,
    height: int = HEIGHT,
) -> str:
    """Lines over x (dates by default). `markers`: a dot per point carrying its data (`data-x`,
    `data-y`) and its value on hover, for charts a reader checks week by week. `height`: of
    the viewBox (compact charts are lower)."""
    # A point without a value (a KPI with no data that week) is left out, never drawn as 0.
    series = [
        dataclasses.replace(s, points=[p for p in s.points if p[1] is not None]) for s in series
    ]
    bands = [_known(b) for b in bands]
    hlines = [h for h in hlines if h[0] is not None]
    xs = [_num(x) for s in series for x, _ in s.points] + [_num(x) for b in bands for x in b.x]
    ys = [float(y) for s in series for _, y in s.points]
    ys += [float(v) for b in bands for v in (*b.low, *b.high)]
    ys += [float(y) for y, _, _ in hlines]
    if not xs:
        return empty_chart(chart_id, title, x_label, y_label, "No data this week")
    canvas = _Canvas(
        chart_id, title, x_label, y_label, _extent(xs, include_zero=False), _extent(ys),
        x_dates=x_dates, height=height,
    )  # fmt: skip
    for band in bands:
        upper = [canvas.point(x, y) for x, y in zip(band.x, band.high, strict=True)]
        lower = [canvas.point(x, y) for x, y in zip(band.x, band.low, strict=True)]
        canvas.add(
            f'<polygon class="band mark" fill="{band.colour}" fill-opacity="0.18" stroke="none" '
            f'points="{" ".join(upper + lower[::-1])}"><title>{escape(band.name)}</title>'
            "</polygon>"
        )
    labelled: list[float] = []
    for y, label, colour in hlines:
        py = canvas.y(float(y))
        # Every line names itself on hover; its text label is left out where it would overprint
        # one already drawn (close minimums of several groups).
        text = ""
        if all(abs(py - other) >= LABEL_GAP for other in labelled):
            labelled.append(py)
            text = (
                f'<text class="reference-label" x="{WIDTH - MARGIN["right"] - 4}" '
                f'y="{py - 4:.1f}" text-anchor="end" fill="{colour}">{escape(label)}</text>'
            )
        canvas.add(
            f'<line class="reference mark" x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" '
            f'y1="{py:.1f}" y2="{py:.1f}" stroke="{colour}" stroke-dasharray="2 3">'
            f"<title>{escape(label)}</title></line>{text}"
        )
    for s in series:
        if not s.points:
            continue
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        points = " ".join(canvas.point(x, y) for x, y in s.points)
        canvas.add(
            f'<polyline class="line mark" fill="none" stroke="{s.colour}" stroke-width="2"'
            f'{dash} points="{points}"><title>{escape(s.name)}</title></polyline>'
        )
        if markers:
            canvas.add(
                "".join(
                    f'<circle class="point mark" r="2.5" fill="{s.colour}" '
                    f'cx="{canvas.x(_num(x)):.1f}" cy="{canvas.y(float(y)):.1f}" '
                    f'data-series="{escape(s.name)}" data-x="{escape(_data_x(x))}" '
                    f'data-y="{float(y)!r}"><title>{escape(_data_x(x))}: {_format(float(y))}'
                    "</title></circle>"
                    for x, y in s.points
                )
            )
        elif len(s.points) == 1:
            ((x, y),) = s.points
            canvas.add(
                f'<circle class="mark" r="3" fill="{s.colour}" '
                f'cx="{canvas.x(_num(x)):.1f}" cy="{canvas.y(float(y)):.1f}"/>'
            )
    legend = [(s.name, s.colour, s.dashed) for s in series]
    legend += [(b.name, b.colour, False) for b in bands]
    return canvas.render(legend, note)


def funnel_chart(
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    points: Sequence[tuple[Number, Number, str, str]],
    limits: dict[str, Sequence[tuple[Number, Number]]],
    centre: Number,
    *,
    note: str = "",
) -> str:
    """Value against denominator with control limits; flagged points (amber/red) labelled."""
    if not points:
        return empty_chart(chart_id, title, x_label, y_label, "No site reached the minimum")
    xs = [float(x) for x, *_ in points]
    ys = [float(y) for _, y, *_ in points] + [float(centre)]
    ys += [float(y) for line in limits.values() for _, y in line]
    canvas = _Canvas(chart_id, title, x_label, y_label, _extent(xs), _extent(ys))
    styles = {"3σ": ("#c62828", "4 3"), "2σ": ("#ef8f00", "2 3")}
    for name, line in limits.items():
        colour, dash = styles.get(name.split()[0], ("#555", "2 2"))
        kept = [(x, y) for x, y in line if math.isfinite(y)]
        if len(kept) > 1:
            canvas.add(
                f'<polyline class="limit mark" fill="none" stroke="{colour}" '
                f'stroke-dasharray="{dash}" points="{" ".join(canvas.point(x, y) for x, y in kept)}">'
                f"<title>{escape(name)}</title></polyline>"
            )
    cy = canvas.y(float(centre))
    canvas.add(
        f'<line class="reference mark" x1="{MARGIN["left"]}" x2="{WIDTH - MARGIN["right"]}" '
        f'y1="{cy:.1f}" y2="{cy:.1f}" stroke="#555"/>'
    )
    for x, y, label, flag in points:
        colour = RAG_COLOURS.get(flag, "#607d8b")
        px, py = canvas.x(float(x)), canvas.y(float(y))
        canvas.add(
            f'<circle class="point mark" data-flag="{escape(flag)}" cx="{px:.1f}" cy="{py:.1f}" '
            f'r="{4 if flag in ("red", "amber") else 3}" fill="{colour}" fill-opacity="0.85">'
            f"<title>{escape(label)}: {_format(float(y))}</title></circle>"
        )
        if flag in ("red", "amber"):
            near_edge = px > WIDTH - MARGIN["right"] - 60
            canvas.add(
                f'<text class="point-label" x="{px - 6 if near_edge else px + 6:.1f}" '
                f'y="{py - 6:.1f}" fill="{colour}" '
                f'text-anchor="{"end" if near_edge else "start"}">{escape(label)}</text>'
            )
    legend = [("3σ limits", "#c62828", True), ("2σ limits", "#ef8f00", True)]
    return canvas.render(legend, note)


def stacked_bars(
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    categories: Sequence[str],
    stacks: dict[str, Sequence[Number]],
    *,
    colours: Sequence[str] = PALETTE,
    note: str = "",
) -> str:
    """Vertical bars per category, one segment per stack (e.g. unpaid amount by age bucket)."""
    if not categories:
        return empty_chart(chart_id, title, x_label, y_label, "No data this week")
    totals = [sum(float(s[i] or 0) for s in stacks.values()) for i in range(len(categories))]
    slots = len(categories)
    ticks = [(i + 0.5, c) for i, c in enumerate(categories)]
    canvas = _Canvas(chart_id, title, x_label, y_label, (0, slots), _extent(totals), x_ticks=ticks)
    width = (canvas.x(1) - canvas.x(0)) * 0.6
    for i, _category in enumerate(categories):
        base = 0.0
        for (name, values), colour in zip(stacks.items(), colours, strict=False):
            value = float(values[i] or 0)
            if value <= 0:
                continue
            top, bottom = canvas.y(base + value), canvas.y(base)
            canvas.add(
                f'<rect class="bar mark" x="{canvas.x(i + 0.5) - width / 2:.1f}" '
                f'y="{top:.1f}" width="{width:.1f}" height="{bottom - top:.1f}" fill="{colour}">'
                f"<title>{escape(categories[i])} {escape(name)}: {_format(value)}</title></rect>"
            )
            base += value
    legend = [(name, colour, False) for name, colour in zip(stacks, colours, strict=False)]
    return canvas.render(legend, note)


def histogram(
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    values: Sequence[Number],
    *,
    bin_width: float,
    reference: tuple[Number, str] | None = None,
    note: str = "",
) -> str:
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not values:
        return empty_chart(chart_id, title, x_label, y_label, "No data this week")
    top = max(values)
    edges = [i * bin_width for i in range(int(top // bin_width) + 2)]
    counts = [sum(lo <= v < lo + bin_width for v in values) for lo in edges[:-1]]
    canvas = _Canvas(chart_id, title, x_label, y_label, (0.0, edges[-1]), (0.0, float(max(counts))))
    for lo, count in zip(edges, counts, strict=False):
        if not count:
            continue
        x0, x1 = canvas.x(lo), canvas.x(lo + bin_width)
        y0, y1 = canvas.y(count), canvas.y(0)
        canvas.add(
            f'<rect class="bar mark" x="{x0 + 1:.1f}" y="{y0:.1f}" width="{x1 - x0 - 2:.1f}" '
            f'height="{y1 - y0:.1f}" fill="{PALETTE[0]}"><title>{_format(lo)}-'
            f"{_format(lo + bin_width)}: {count}</title></rect>"
        )
    if reference is not None:
        x = canvas.x(float(reference[0]))
        canvas.add(
            f'<line class="reference mark" x1="{x:.1f}" x2="{x:.1f}" y1="{MARGIN["top"]}" '
            f'y2="{HEIGHT - MARGIN["bottom"]}" stroke="#c62828" stroke-dasharray="4 3"/>'
            f'<text class="reference-label" x="{x + 4:.1f}" y="{MARGIN["top"] + 12}" '
            f'fill="#c62828">{escape(reference[1])}</text>'
        )
    return canvas.render(note=note)


@dataclass
class RangeRow:
    label: str
    low: float | None
    mid: float | None
    high: float | None
    value: float | None
    annotation: str = ""
    extra: dict = field(default_factory=dict)


def range_dots(
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    rows: Sequence[RangeRow],
    *,
    note: str = "",
) -> str:
    """Per row, a peer interquartile bar with its median tick and the row's own value as a dot."""
    if not rows:
        return empty_chart(chart_id, title, x_label, y_label, "No registry benchmark")
    values = [v for r in rows for v in (r.low, r.high, r.value) if v is not None]
    height = max(HEIGHT, MARGIN["top"] + MARGIN["bottom"] + 36 * len(rows))
    # categories run down the y axis: row i sits at y = i + 0.5 (reversed so the first is on top)
    canvas = _Canvas(
        chart_id,
        title,
        x_label,
        y_label,
        _extent(values),
        (0, len(rows)),
        height=height,
        y_tick_labels=False,
    )
    for i, row in enumerate(rows):
        y = canvas.y(len(rows) - i - 0.5)
        canvas.add(
            f'<text class="row-label" x="{MARGIN["left"] + 4}" y="{y - 10:.1f}">'
            f"{escape(row.label)} {escape(row.annotation)}</text>"
        )
        if row.low is not None and row.high is not None:
            x0, x1 = canvas.x(row.low), canvas.x(row.high)
            canvas.add(
                f'<rect class="bar mark" x="{x0:.1f}" y="{y - 5:.1f}" width="{max(x1 - x0, 1):.1f}"'
                f' height="10" fill="#90a4ae"><title>peer P25-P75</title></rect>'
            )
        if row.mid is not None:
            xm = canvas.x(row.mid)
            canvas.add(
                f'<line class="mark" x1="{xm:.1f}" x2="{xm:.1f}" y1="{y - 8:.1f}" '
                f'y2="{y + 8:.1f}" stroke="#37474f" stroke-width="2"/>'
            )
        if row.value is not None:
            canvas.add(
                f'<circle class="point mark" cx="{canvas.x(row.value):.1f}" cy="{y:.1f}" r="5" '
                f'fill="{PALETTE[0]}"><title>{escape(row.label)}: {_format(row.value)}</title>'
                "</circle>"
            )
    legend = [("peer P25-P75", "#90a4ae", False), ("peer median", "#37474f", False),
              ("study", PALETTE[0], False)]  # fmt: skip
    return canvas.render(legend, note)


#: Marks of a share chart: the plan's target (solid) and minimum (dashed).
TARGET_COLOUR, MINIMUM_COLOUR, NO_DATA_COLOUR = "#212121", "#c62828", "#757575"


def percent(value: float) -> str:
    """A share (0-1) as a percentage with at most one decimal: 0.45 -> '45%', 0.125 -> '12.5%'."""
    return f"{value * 100:.1f}".rstrip("0").rstrip(".") + "%"


@dataclass
class ShareBar:
    """One group of a share chart: its actual share (0-1) and the plan's target and minimum.
    `status` '' draws the bar; 'suppressed' (a cell under 5 subjects, or its complement) and
    'no_data' (`reason`) draw no bar, only their label: an unknown share is never a 0 bar."""

    label: str
    share: float | None
    target: float | None = None
    minimum: float | None = None
    status: str = ""
    reason: str = ""
    flag: str | None = None

    def text(self) -> str:
        """The group as its row label and the chart's text alternative say it."""
        if self.status == "suppressed":
            shown = "suppressed (<5)"
        elif self.status == "no_data" or self.share is None:
            shown = f"no data: {self.reason or 'no data'}"
        else:
            shown = percent(self.share)
        plan = [f"{name} {percent(v)}" for name, v in (("target", self.target),
                ("minimum", self.minimum)) if v is not None]  # fmt: skip
        return f"{self.label}: {shown}" + (f" ({', '.join(plan)})" if plan else "")


def share_bars(
    chart_id: str,
    title: str,
    x_label: str,
    y_label: str,
    bars: Sequence[ShareBar],
    *,
    note: str = "",
) -> str:
    """Horizontal bars of shares on a 0-100% axis, one row per group, with the group's target
    (solid tick) and minimum (dashed tick); a red or amber flag colours the bar. Each mark
    carries its group and value (`data-group`, `data-share`, `data-target`, `data-minimum`)."""
    if not bars:
        return empty_chart(chart_id, title, x_label, y_label, "No plan groups")
    height = max(240, MARGIN["top"] + MARGIN["bottom"] + 40 * len(bars))
    ticks = [(v, f"{v}") for v in (0, 25, 50, 75, 100)]
    canvas = _Canvas(chart_id, title, x_label, y_label, (0, 100), (0, 1), x_ticks=ticks,
                     height=height, y_tick_labels=False)  # fmt: skip
    top, row = MARGIN["top"], (height - MARGIN["top"] - MARGIN["bottom"]) / len(bars)
    left = MARGIN["left"]
    for i, bar in enumerate(bars):
        y = top + row * (i + 0.5) + 6
        group = escape(bar.label)
        shown = bar.status == "" and bar.share is not None
        grey = "" if shown else f' fill="{NO_DATA_COLOUR}"'  # and class muted: the page's CSS
        canvas.add(
            f'<text class="row-label{"" if shown else " muted"}" x="{left + 4}" '
            f'y="{y - 10:.1f}"{grey} data-group="{group}">'
            f"{escape(bar.text())}</text>"
        )
        if shown:
            width = canvas.x(bar.share * 100) - left
            colour = RAG_COLOURS[bar.flag] if bar.flag in ("red", "amber") else PALETTE[0]
            canvas.add(
                f'<rect class="bar mark" data-group="{group}" data-share="{bar.share!r}" '
                f'x="{left}" y="{y - 5:.1f}" width="{width:.1f}" height="10" fill="{colour}">'
                f"<title>{escape(bar.text())}</title></rect>"
            )
        for kind, value, colour, dash in (("target", bar.target, TARGET_COLOUR, ""),
                                          ("minimum", bar.minimum, MINIMUM_COLOUR, "3 2")):  # fmt: skip
            if value is None:
                continue
            x = canvas.x(value * 100)
            dashes = f' stroke-dasharray="{dash}"' if dash else ""
            canvas.add(
                f'<line class="{kind} mark" data-group="{group}" data-{kind}="{value!r}" '
                f'x1="{x:.1f}" x2="{x:.1f}" y1="{y - 9:.1f}" y2="{y + 9:.1f}" '
                f'stroke="{colour}" stroke-width="2"{dashes}><title>{escape(bar.label)} '
                f"{kind} {percent(value)}</title></line>"
            )
    legend = [("actual share", PALETTE[0], False), ("target", TARGET_COLOUR, False),
              ("minimum", MINIMUM_COLOUR, True)]  # fmt: skip
    return canvas.render(legend, note, desc=f"{title}. " + "; ".join(b.text() for b in bars))
