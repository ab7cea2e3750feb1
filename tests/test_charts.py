"""Charts draw only what was delivered: a point without a value is left out, never drawn as 0."""

from __future__ import annotations

import datetime as dt

from publishing.charts import Band, Series, line_chart


def test_a_line_chart_leaves_out_points_without_a_value():
    days = [dt.date(2026, 1, 1) + dt.timedelta(days=7 * i) for i in range(4)]
    svg = line_chart(
        "c", "title", "date", "subjects",
        [Series("randomized", [(days[0], 1), (days[1], None), (days[2], 3)])],
        bands=[Band("fan", days[:3], [0, None, 2], [2, None, 4])],
        hlines=[(None, "target", "#c62828")],
    )  # fmt: skip
    assert svg.count("<polyline") == 1
    assert "target" not in svg  # a target of None draws no reference line
    only_missing = line_chart("d", "t", "date", "y", [Series("s", [(days[0], None)])])
    assert "No data this week" in only_missing


def test_reference_lines_close_together_keep_one_text_label_and_all_name_themselves():
    """Several groups' minimums a few points apart: every line names itself on hover, but a text
    label is only drawn where it does not overprint one already drawn."""
    import re

    from publishing.charts import LABEL_GAP

    days = [dt.date(2026, 1, 1) + dt.timedelta(days=7 * i) for i in range(3)]
    minimums = [30.0, 12.0, 12.5, 5.0, 60.0]
    svg = line_chart(
        "c", "title", "week", "share (%)",
        [Series("s", [(d, 40.0) for d in days])],
        hlines=[(m, f"minimum {m}", "#000") for m in minimums],
    )  # fmt: skip
    lines = re.findall(
        r'<line class="reference mark"[^>]*y1="([\d.]+)"[^>]*><title>(.*?)</title>', svg
    )
    assert [title for _, title in lines] == [f"minimum {m}" for m in minimums]
    labels = [
        float(y) + 4
        for y in re.findall(r'<text class="reference-label" x="[\d.]+" y="([\d.]+)"', svg)
    ]
    ys = [float(y) for y, _ in lines]
    assert len(labels) < len(minimums)  # 12.0 and 12.5 are too close for two labels
    for i, a in enumerate(labels):
        assert a in ys
        assert all(abs(a - b) >= LABEL_GAP for b in labels[i + 1 :])
