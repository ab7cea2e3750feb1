"""Issue 22: the benchmark's verdict (bench/summary.py) from its repetitions.

The bench itself takes minutes per scale and is not run here; these test the statistics, the
targets and the lines it prints, on measurements made up by hypothesis.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import summary
from core.settings import PROJECT_ROOT

seconds = st.floats(min_value=0.01, max_value=1e4, allow_nan=False, allow_infinity=False)
scales = st.sampled_from(["demo", "large", "1", "2", "4", "8", "16", "32", "0.5", "100"])


def run(wall: float, rss: int = 2**30, steps: dict | None = None) -> dict:
    steps = (
        steps if steps is not None else {"smo_deliveries": wall / 4, "warehouse_models": wall / 2}
    )
    return {
        "wall_s": wall,
        "peak_rss_bytes": rss,
        "steps": steps,
        "skipped_steps": [],
        "imports_s": 1.0,
        "execute_s": wall * 0.9,
    }


def rep(refresh: float, floor: float, nothing_new: float, rss: int = 2**30) -> dict:
    floors = dict.fromkeys(summary.STAGES, 0.0)
    floors["dbt build + tests"] = floor
    return {"weekly": run(refresh, rss), "floor": floors, "nothing_new": run(nothing_new, rss)}


@st.composite
def repetitions(draw):
    count = draw(st.integers(1, 5))
    return [rep(draw(seconds), draw(seconds), draw(seconds)) for _ in range(count)]


# -- statistics -----------------------------------------------------------------------------


@given(st.lists(seconds, min_size=1, max_size=9))
def test_spread_brackets_the_median_whatever_the_order(values):
    spread = summary.Spread.of(values)
    assert spread.low <= spread.median <= spread.high
    assert spread == summary.Spread.of(sorted(values, reverse=True))
    assert math.isclose(spread.spread, max(values) / min(values) - 1)


def test_no_repetition_is_an_error_not_a_zero():
    with pytest.raises(ValueError, match="no repetitions"):
        summary.Spread.of([])


@given(st.lists(st.tuples(seconds, seconds), min_size=1, max_size=9))
def test_a_ratio_per_pair(pairs):
    refresh, floor = [r for r, _ in pairs], [f for _, f in pairs]
    ratios = summary.pair_ratios(refresh, floor)
    assert len(ratios) == len(pairs)
    assert all(math.isclose(q * f, r) for q, r, f in zip(ratios, refresh, floor, strict=True))


def test_a_pair_without_a_floor_gives_no_ratio_rather_than_infinity():
    assert summary.ratio(3.0, 0.0) is None
    assert summary.pair_ratios([3.0, 4.0], [0.0, 2.0]) == [2.0]
    with pytest.raises(ValueError, match="2 refreshes for 1 floors"):
        summary.pair_ratios([1.0, 2.0], [1.0])


def test_a_load_drift_that_slows_both_sides_leaves_the_ratio_alone():
    # the machine gets four times slower during the second pair: the refresh's own range is
    # 300%, but each refresh is 10x, 10x and 8x its floor measured beside it; the ratio of
    # the medians (12 s / 1.5 s = 8x) would mix pairs measured under different loads
    result = summary.summarize("1", [rep(10, 1, 1), rep(40, 4, 4), rep(12, 1.5, 1)])
    assert result["refresh"]["spread"] == pytest.approx(3.0)
    assert result["ratio"]["median"] == pytest.approx(10.0)
    assert result["ratio"]["spread"] == pytest.approx(0.25)


# -- targets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "target"), [("demo", 8.0), ("1", 8.0), ("4", 3.0), ("16", 2.0), ("large", 1.6)]
)
def test_the_issues_targets_at_its_scales(scale, target):
    assert summary.ratio_target(scale) == pytest.approx(target)


@given(st.floats(0.01, 1000), st.floats(0.01, 1000))
def test_a_larger_scale_never_gets_a_looser_target(a, b):
    small, large = sorted((a, b))
    assert summary.ratio_target(str(large)) <= summary.ratio_target(str(small))
    assert 1.6 <= summary.ratio_target(str(a)) <= 8.0


@given(st.floats(1.0, 4.0))
def test_between_two_scales_the_target_lies_between_theirs(x):
    assert 3.0 <= summary.ratio_target(str(x)) <= 8.0


def test_outside_the_issues_scales_the_nearest_target_holds():
    assert summary.ratio_target("0.25") == 8.0
    assert summary.ratio_target("300") == 1.6
    # geometric middle of 4x and 16x: the geometric middle of their targets
    assert summary.ratio_target("8") == pytest.approx(math.sqrt(3.0 * 2.0))


# -- one scale ------------------------------------------------------------------------------


@given(scales, repetitions())
def test_summary_of_a_scale(scale, reps):
    result = summary.summarize(scale, reps)
    pairs = [r["weekly"]["wall_s"] / sum(r["floor"].values()) for r in reps]
    assert result["ratio"]["median"] == pytest.approx(statistics.median(pairs))
    assert result["ratio_ok"] == (result["ratio"]["median"] <= summary.ratio_target(scale))
    refresh = statistics.median(r["weekly"]["wall_s"] for r in reps)
    nothing_new = statistics.median(r["nothing_new"]["wall_s"] for r in reps)
    assert result["nothing_new_share"] == pytest.approx(nothing_new / refresh)
    if scale == "large":
        assert result["nothing_new_ok"] == (nothing_new / refresh <= 0.10)
        assert result["rss_ok"] is True
    else:  # reported without a target
        assert result["nothing_new_ok"] is None and result["rss_ok"] is None
    if len(reps) == 1:  # with more, a median per stage need not add up to the median total
        total = sum(s["refresh"] for s in result["stages"].values())
        assert total == pytest.approx(refresh)
    json.dumps(result)


@given(seconds, st.dictionaries(st.sampled_from(["smo_deliveries", "x", "publish_gate"]), seconds))
def test_stages_account_for_the_whole_wall_time(wall, steps):
    stages = summary.stages_of(run(wall, steps=steps))
    assert sum(stages.values()) == pytest.approx(wall)
    assert stages["publish gate"] == steps.get("publish_gate", 0.0)


def test_peak_rss_is_the_largest_of_any_run_and_judged_at_large_only():
    reps = [rep(100, 60, 5, rss=2 * 2**30), rep(100, 60, 5, rss=int(3.5 * 2**30))]
    assert summary.summarize("large", reps)["peak_rss_bytes"] == int(3.5 * 2**30)
    assert summary.summarize("large", reps)["rss_ok"] is False
    assert summary.summarize("16", reps)["rss_ok"] is None


def test_summary_line_says_the_verdict_and_the_spread():
    ok = summary.summarize("1", [rep(14.8, 2.0, 1.3), rep(13.9, 2.1, 1.2), rep(14.2, 2.2, 1.4)])
    line = summary.summary_line(ok)
    assert line.startswith("1x: refresh 14.2 s (13.9-14.8) / floor 2.1 s (2.0-2.2) = ")
    assert "target <= 8.0x ok" in line and "no-op 1.3 s (1.2-1.4) = 9% of the refresh" in line
    assert "GiB" in line and "3 reps" in line
    large = summary.summarize("large", [rep(160, 60, 30, rss=4 * 2**30)])
    line = summary.summary_line(large)
    assert "target <= 1.6x MISSED" in line
    assert "= 19% of the refresh, target <= 10% MISSED" in line
    assert "RSS 4.00 GiB, target <= 3 GiB MISSED" in line
    assert "1 reps" in line and "(" not in line.split("=")[0]  # one run: no range to show


def test_overall_line_judges_each_ratio_against_its_own_target():
    # 7.9x at 1x is within 8x; 1.7x at large is above 1.6x: large is the worst
    at_1x = summary.summarize("1", [rep(79, 10, 5)])
    at_large = summary.summarize("large", [rep(170, 100, 10)])
    line = summary.overall_line([at_1x, at_large])
    assert line.startswith("overall: worst refresh/floor 1.7x at large = 1.06x its target")
    assert line.endswith("missed: large refresh/floor 1.7x > 1.6x")
    assert summary.overall_line([at_1x]).endswith("every target met")
    assert summary.overall_line([]) == "overall: no scale measured"


# -- profile and Markdown -------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["model", "test", "unit_test", "seed"]), seconds),
                max_size=30))  # fmt: skip
def test_dbt_profile_sums_per_type_and_keeps_the_slowest(nodes):
    results = [
        {"unique_id": f"{kind}.smo.n{i}", "execution_time": s} for i, (kind, s) in enumerate(nodes)
    ]
    profile = summary.dbt_profile({"elapsed_time": 20.0, "results": results})
    assert sum(v["count"] for v in profile["by_type"].values()) == len(nodes)
    for kind in {k for k, _ in nodes}:
        expected = sum(s for k, s in nodes if k == kind)
        assert profile["by_type"][kind]["seconds"] == pytest.approx(expected)
    times = [s for _, _, s in profile["slowest"]]
    assert times == sorted(times, reverse=True) and len(times) == min(10, len(nodes))
    assert not nodes or times[0] == max(s for _, s in nodes)


def test_markdown_has_every_scale_every_repetition_and_the_overall_line():
    results = []
    for scale, factor in (("1", 1), ("4", 2), ("large", 6)):
        reps = [rep(70 * factor + i, 2.2 * factor, 14) for i in range(3)]
        reps[2]["cpu_probe_s"] = 0.25 + factor  # runs before this field have none
        if scale == "1":  # the median repetition's dbt timings; the other scales have none
            reps[1]["weekly"]["dbt"] = summary.dbt_profile(
                {
                    "elapsed_time": 20.8,
                    "results": [{"unique_id": "model.smo.m", "execution_time": 3}],
                }
            )
        results.append({
            "scale": scale, "weekly_files": 9, "weekly_bytes": 2**20,
            "current_visits": 43_000 * factor, "bootstrap": run(100), "reps": reps,
            "summary": summary.summarize(scale, reps), "cprofile": None,
        })  # fmt: skip
    text = summary.markdown(results, "Refresh benchmark")
    assert summary.overall_line([r["summary"] for r in results]) in text
    for r in results:
        assert summary.summary_line(r["summary"]) in text
        assert f"#### Profile ({summary.label(r['scale'])})" in text
    assert text.count("| 3 | ") == 3  # the third repetition of each scale
    for factor in (1, 2, 6):  # each scale's probe in its third repetition's row
        assert f"| {0.25 + factor:.2f} |" in text
    assert "dbt (median repetition's run_results.json): elapsed 20.8 s" in text
    assert "no run_results.json found" in text  # the scales whose median rep has none
    assert "### Growth" in text


def test_the_bench_refuses_zero_repetitions_with_a_message():
    done = subprocess.run(
        [sys.executable, "-m", "bench.refresh", "--reps", "0"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--reps must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
