"""What `make bench` concludes from its repetitions: medians, spread, targets, the lines it prints.

Pure functions of the measurements `bench/refresh.py` takes, so the verdict can be tested
without running a refresh. One machine's noise moves single runs by tens of percent; the bench
therefore runs each weekly refresh next to its floor, takes the ratio per pair (a load drift
slows both) and reports the median ratio with its spread, never a single run.

Targets (issue 22): weekly refresh / floor <= 8x at 1x demo, 3x at 4x, 2.0x at 16x, 1.6x at
`large`; between two of those scales the target is interpolated on log-log axes (a ratio that
falls by the same factor per doubling of the data), outside them the nearest one holds. `large`
counts as 75x demo (its subjects: 150,000 against 2,000). At `large` also: peak RSS <= 3 GiB and
a refresh with no new deliveries <= 10% of the weekly refresh (medians); at other scales those
two are reported without a target.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from core.tables import markdown_table

#: Dagster step -> benchmark stage, in the order of the job.
STAGES = (
    "delivery gate + load",
    "registry replay",
    "dbt build + tests",
    "publish gate",
    "publish",
    "report",
    "Dagster + process start",
)
_STEP_STAGES = {
    "smo_deliveries": "delivery gate + load",
    "registry_studies": "registry replay",
    "warehouse_models": "dbt build + tests",
    "publish_gate": "publish gate",  # one step: every mart's checks (orchestration/defs/publish.py)
    "bi__oversight": "publish",
    "bi__oversight_report": "report",
}

#: (multiple of demo, weekly refresh / floor at most).
RATIO_TARGETS = ((1.0, 8.0), (4.0, 3.0), (16.0, 2.0), (75.0, 1.6))
LARGE_MULTIPLE = 75.0
TARGET_RSS_GIB = 3.0  # at large
TARGET_NOTHING_NEW_SHARE = 0.10  # at large: no-op median / weekly refresh median
GIB = 2**30


def stage_of(step_key: str) -> str:
    return _STEP_STAGES.get(step_key, "Dagster + process start")


# -- statistics -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """Median of the repetitions and their range; `spread` = max/min - 1 (None when min is 0)."""

    median: float
    low: float
    high: float
    spread: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no repetitions to summarise")
        low, high = min(values), max(values)
        return cls(
            statistics.median(values), low, high, high / low - 1 if low > 0 else None
        )  # fmt: skip

    def text(self, unit: str = " s", digits: int = 1) -> str:
        """`14.2 s (13.9-14.8)`; one repetition has no range to show."""
        value = f"{self.median:.{digits}f}{unit}"
        if self.low == self.high:
            return value
        return f"{value} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def ratio(a: float, b: float) -> float | None:
    """a / b, None when b is not positive (no floor measured: no ratio, never 0 or inf)."""
    return a / b if b > 0 else None


def pair_ratios(refresh: Sequence[float], floor: Sequence[float]) -> list[float]:
    """One ratio per side-by-side pair (refresh i, floor i); pairs without a floor are left out."""
    if len(refresh) != len(floor):
        raise ValueError(f"{len(refresh)} refreshes for {len(floor)} floors")
    return [r for r in map(ratio, refresh, floor) if r is not None]


# -- targets --------------------------------------------------------------------------------


def multiple_of_demo(scale: str) -> float:
    if scale == "demo":
        return 1.0
    if scale == "large":
        return LARGE_MULTIPLE
    return float(scale)


def label(scale: str) -> str:
    return scale if scale in ("demo", "large") else f"{float(scale):g}x"


def ratio_target(scale: str) -> float:
    """The weekly refresh / floor target at a scale (log-log interpolation, clamped)."""
    x = multiple_of_demo(scale)
    (x0, y0), *rest = RATIO_TARGETS
    if x <= x0:
        return y0
    for x1, y1 in rest:
        if x <= x1:
            t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))
        x0, y0 = x1, y1
    return y0


# -- one scale ------------------------------------------------------------------------------


def stages_of(run: Mapping) -> dict[str, float]:
    """A run's wall time per stage; time outside any step is Dagster's and the process's."""
    stages = dict.fromkeys(STAGES, 0.0)
    for step, seconds in run["steps"].items():
        stages[stage_of(step)] += seconds
    stages["Dagster + process start"] += run["wall_s"] - sum(run["steps"].values())
    return stages


def summarize(scale: str, reps: Sequence[Mapping]) -> dict:
    """Medians, spread and verdicts of one scale's repetitions.

    Each repetition: {"weekly": run, "floor": {stage: seconds}, "nothing_new": run}, a run
    having "wall_s", "peak_rss_bytes" and "steps" ({step key: seconds}).
    """
    refresh = [r["weekly"]["wall_s"] for r in reps]
    floor = [sum(r["floor"].values()) for r in reps]
    nothing_new = [r["nothing_new"]["wall_s"] for r in reps]
    ratios = pair_ratios(refresh, floor)
    at_large = scale == "large"
    target = ratio_target(scale)
    ratio_s = Spread.of(ratios) if ratios else None
    rss = max(max(r["weekly"]["peak_rss_bytes"], r["nothing_new"]["peak_rss_bytes"]) for r in reps)
    refresh_s = Spread.of(refresh)
    share = ratio(statistics.median(nothing_new), refresh_s.median)
    weekly_stages = [stages_of(r["weekly"]) for r in reps]
    steps = sorted({k for r in reps for k in r["weekly"]["steps"]})
    return {
        "scale": scale,
        "reps": len(reps),
        "refresh": asdict(refresh_s),
        "floor": asdict(Spread.of(floor)),
        "ratio": asdict(ratio_s) if ratio_s else None,
        "ratio_target": target,
        "ratio_ok": ratio_s.median <= target if ratio_s else None,
        "nothing_new": asdict(Spread.of(nothing_new)),
        "nothing_new_share": share,
        "nothing_new_target": TARGET_NOTHING_NEW_SHARE if at_large else None,
        "nothing_new_ok": (
            share <= TARGET_NOTHING_NEW_SHARE if at_large and share is not None else None
        ),
        "peak_rss_bytes": rss,
        "rss_target_bytes": TARGET_RSS_GIB * GIB if at_large else None,
        "rss_ok": rss <= TARGET_RSS_GIB * GIB if at_large else None,
        "stages": {
            stage: {
                "refresh": statistics.median(s[stage] for s in weekly_stages),
                "floor": statistics.median(r["floor"].get(stage, 0.0) for r in reps),
            }
            for stage in STAGES
        },
        "steps": {
            step: statistics.median(r["weekly"]["steps"].get(step, 0.0) for r in reps)
            for step in steps
        },
    }


def _verdict(ok: bool | None) -> str:
    return "ok" if ok else "MISSED"


def summary_line(summary: Mapping) -> str:
    """`1x: refresh 14.2 s (13.9-14.8) / floor 2.1 s (2.0-2.2) = 6.8x (...) ...; RSS 0.9 GiB`."""
    refresh, floor = Spread(**summary["refresh"]), Spread(**summary["floor"])
    parts = [f"{label(summary['scale'])}: refresh {refresh.text()} / floor {floor.text()}"]
    if summary["ratio"] is None:
        parts[0] += f" = no ratio (no floor measured), target <= {summary['ratio_target']:.1f}x"
    else:
        parts[0] += (
            f" = {Spread(**summary['ratio']).text('x')}, "
            f"target <= {summary['ratio_target']:.1f}x {_verdict(summary['ratio_ok'])}"
        )
    noop = f"no-op {Spread(**summary['nothing_new']).text()}"
    if summary["nothing_new_share"] is not None:
        noop += f" = {summary['nothing_new_share']:.0%} of the refresh"
    if summary["nothing_new_target"] is not None:
        noop += (
            f", target <= {summary['nothing_new_target']:.0%} {_verdict(summary['nothing_new_ok'])}"
        )
    rss = f"RSS {summary['peak_rss_bytes'] / GIB:.2f} GiB"
    if summary["rss_target_bytes"] is not None:
        rss += (
            f", target <= {summary['rss_target_bytes'] / GIB:.0f} GiB {_verdict(summary['rss_ok'])}"
        )
    spread = Spread(**summary["ratio"]).spread if summary["ratio"] else None
    reps = f"{summary['reps']} reps" + (f", ratio spread {spread:.0%}" if spread else "")
    return "; ".join([parts[0], noop, rss, reps])


def missed_targets(summary: Mapping) -> list[str]:
    name, missed = label(summary["scale"]), []
    if summary["ratio_ok"] is not True:
        got = "no ratio" if summary["ratio"] is None else f"{summary['ratio']['median']:.1f}x"
        missed.append(f"{name} refresh/floor {got} > {summary['ratio_target']:.1f}x")
    if summary["nothing_new_target"] is not None and summary["nothing_new_ok"] is not True:
        missed.append(
            f"{name} no-op {summary['nothing_new_share']:.0%} > {summary['nothing_new_target']:.0%}"
        )
    if summary["rss_target_bytes"] is not None and summary["rss_ok"] is not True:
        missed.append(
            f"{name} RSS {summary['peak_rss_bytes'] / GIB:.2f} GiB "
            f"> {summary['rss_target_bytes'] / GIB:.0f} GiB"
        )
    return missed


def overall_line(summaries: Sequence[Mapping]) -> str:
    """The worst refresh/floor ratio relative to its scale's target, and whether all targets hold."""
    if not summaries:
        return "overall: no scale measured"
    measured = [s for s in summaries if s["ratio"] is not None]
    missed = [m for s in summaries for m in missed_targets(s)]
    verdict = "every target met" if not missed else "missed: " + ", ".join(missed)
    if not measured:
        return f"overall: no refresh/floor ratio measured; {verdict}"
    worst = max(measured, key=lambda s: s["ratio"]["median"] / s["ratio_target"])
    share = worst["ratio"]["median"] / worst["ratio_target"]
    return (
        f"overall: worst refresh/floor {worst['ratio']['median']:.1f}x at "
        f"{label(worst['scale'])} = {share:.2f}x its target "
        f"(<= {worst['ratio_target']:.1f}x); {verdict}"
    )


# -- dbt profile ----------------------------------------------------------------------------


def dbt_profile(run_results: Mapping, slowest: int = 10) -> dict:
    """dbt's own timings from run_results.json: sum per resource type and the slowest nodes."""
    by_type: dict[str, dict] = {}
    nodes = []
    for result in run_results.get("results", []):
        kind = result["unique_id"].split(".", 1)[0]
        seconds = float(result.get("execution_time") or 0.0)
        entry = by_type.setdefault(kind, {"count": 0, "seconds": 0.0})
        entry["count"] += 1
        entry["seconds"] += seconds
        nodes.append((result["unique_id"], kind, seconds))
    nodes.sort(key=lambda n: (-n[2], n[0]))
    return {
        "elapsed_s": run_results.get("elapsed_time"),
        "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]["seconds"])),
        "slowest": [list(n) for n in nodes[:slowest]],
    }


# -- Markdown -------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def _median_rep(reps: Sequence[Mapping]) -> Mapping:
    """The repetition whose weekly refresh took the median time (the lower one of two)."""
    ordered = sorted(reps, key=lambda r: r["weekly"]["wall_s"])
    return ordered[(len(ordered) - 1) // 2]


def scale_section(result: Mapping) -> str:
    """Per scale: its summary line, the per-stage medians, every repetition, the profile."""
    summary, reps = result["summary"], result["reps"]
    total = summary["refresh"]["median"]
    floor_total = summary["floor"]["median"]
    stages = summary["stages"]
    stage_rows = [
        [stage, f"{s['refresh']:.1f}", f"{s['refresh'] / total:.0%}", f"{s['floor']:.1f}",
         _fmt(ratio(s["refresh"], s["floor"]), ".1f", "x")]
        for stage, s in stages.items()
    ] + [
        ["**weekly refresh** (median)", f"**{total:.1f}**", "100%", f"{floor_total:.1f}",
         f"**{_fmt(summary['ratio'] and summary['ratio']['median'], '.1f', 'x')}** (of pairs)"]
    ]  # fmt: skip
    rep_rows = [
        [i + 1, f"{r['weekly']['wall_s']:.1f}", f"{sum(r['floor'].values()):.1f}",
         _fmt(ratio(r["weekly"]["wall_s"], sum(r["floor"].values())), ".1f", "x"),
         f"{r['nothing_new']['wall_s']:.1f}", f"{r['weekly']['peak_rss_bytes'] / GIB:.2f}",
         _fmt(r.get("load_1m"), ".1f"), _fmt(r.get("cpu_probe_s"), ".2f")]
        for i, r in enumerate(reps)
    ]  # fmt: skip
    median_rep = _median_rep(reps)
    weekly = median_rep["weekly"]
    lines = [
        f"### {label(result['scale'])} ({result['weekly_files']} files, "
        f"{result['weekly_bytes'] / 2**20:.0f} MiB in the weekly delivery; "
        f"{result['current_visits']:,} current visits)",
        "",
        f"`{summary_line(summary)}`",
        "",
        markdown_table(
            ["stage", "seconds (median)", "share", "floor s (median)", "ratio to floor"],
            stage_rows,
            numeric={1, 2, 3, 4},
        ),
        "",
        "Repetitions (in the order run; each weekly refresh from a copy of the same bootstrapped "
        "folder, then its floor, then a refresh with no new deliveries; CPU probe: seconds of a "
        "fixed Python loop just before the refresh, higher on a slower machine):",
        "",
        markdown_table(
            [
                "rep",
                "refresh s",
                "floor s",
                "ratio",
                "no-op s",
                "peak RSS GiB",
                "load 1 min",
                "CPU probe s",
            ],
            rep_rows,
            numeric=set(range(8)),
        ),
        "",
        f"- delivery gate + load throughput: "
        f"{_fmt(ratio(stages['delivery gate + load']['floor'], stages['delivery gate + load']['refresh']), '.0%')}"  # noqa: E501
        " of DuckDB's typed load (medians)",
        f"- Dagster + process start (median rep): imports {weekly['imports_s']:.1f} s, run outside "
        f"steps {weekly['execute_s'] - sum(weekly['steps'].values()):.1f} s",
        f"- steps skipped by the refreshes with no new deliveries: "
        f"{len(median_rep['nothing_new']['skipped_steps'])}",
        f"- bootstrap run (first weeks, not compared): {result['bootstrap']['wall_s']:.1f} s",
        "",
        profile_section(result),
    ]
    return "\n".join(lines)


def profile_section(result: Mapping) -> str:
    """Where the median repetition's time went: Dagster steps, dbt by type, slowest dbt nodes."""
    summary = result["summary"]
    steps = sorted(summary["steps"].items(), key=lambda kv: -kv[1])
    lines = [
        f"#### Profile ({label(result['scale'])})",
        "",
        "Dagster steps (median over repetitions): "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps),
    ]
    dbt = _median_rep(result["reps"])["weekly"].get("dbt")
    if not dbt:
        lines += ["", "dbt: no run_results.json found for the median repetition's run."]
    else:
        by_type = ", ".join(
            f"{kind} {v['seconds']:.1f} s ({v['count']})" for kind, v in dbt["by_type"].items()
        )
        lines += [
            "",
            f"dbt (median repetition's run_results.json): elapsed {_fmt(dbt['elapsed_s'])} s; "
            f"execution summed per type (nodes): {by_type}",
            "",
            markdown_table(
                ["slowest dbt node", "type", "seconds"],
                [[f"`{uid}`", kind, f"{s:.2f}"] for uid, kind, s in dbt["slowest"]],
                numeric={2},
            ),
        ]
    if result.get("cprofile"):
        lines += ["", "cProfile of one extra weekly refresh, by own time (Dagster's process; dbt is "
                  "a child process, its time shows as reading its output):",
                  "", "```", result["cprofile"].rstrip(), "```"]  # fmt: skip
    return "\n".join(lines)


def summary_table(results: Sequence[Mapping]) -> str:
    """Every scale in one table (the README's Performance table is this one)."""
    rows = []
    for r in results:
        s = r["summary"]
        rows.append(
            [label(r["scale"]), f"{r['current_visits']:,}", Spread(**s["refresh"]).text(""),
             Spread(**s["floor"]).text(""),
             "–" if s["ratio"] is None else Spread(**s["ratio"]).text("x"),
             f"{s['ratio_target']:.1f}x", Spread(**s["nothing_new"]).text(""),
             _fmt(s["nothing_new_share"], ".0%"), f"{s['peak_rss_bytes'] / GIB:.2f}"]
        )  # fmt: skip
    header = ["scale", "current visits", "weekly refresh s", "floor s", "ratio", "target",
              "no-op s", "no-op share", "peak RSS GiB"]  # fmt: skip
    return markdown_table(header, rows, numeric=set(range(1, len(header))))


def growth_table(results: Sequence[Mapping]) -> str:
    """How the refresh and its floor grow with the data (medians), from the first scale."""
    if len(results) < 2:
        return ""
    base = results[0]
    rows = []
    for r in results:
        s = r["summary"]
        rows.append(
            [label(r["scale"]), f"{r['current_visits'] / base['current_visits']:.1f}",
             f"{s['refresh']['median'] / base['summary']['refresh']['median']:.1f}",
             f"{s['floor']['median'] / base['summary']['floor']['median']:.1f}"]
        )  # fmt: skip
    table = markdown_table(["scale", "data x", "refresh time x", "floor time x"], rows,
                           numeric={1, 2, 3})  # fmt: skip
    return "\n".join(
        ["### Growth", "", table, "", "Cost grows linearly or better when `time x` <= `data x`."]
    )


def markdown(results: Sequence[Mapping], title: str) -> str:
    summaries = [r["summary"] for r in results]
    parts = [
        f"# {title}",
        "### Summary (medians; range over repetitions in brackets)",
        summary_table(results),
        "\n".join(f"- `{summary_line(s)}`" for s in summaries)
        + f"\n- **{overall_line(summaries)}**",
    ]
    parts += [scale_section(r) for r in results]
    growth = growth_table([r for r in results if r["scale"] != "large"])
    return "\n\n".join(parts + ([growth] if growth else [])) + "\n"
