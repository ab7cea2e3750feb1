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
