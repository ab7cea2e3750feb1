"""End-to-end benchmark: the weekly refresh through Dagster, against the bare-DuckDB floor.

For each scale it generates the synthetic portfolio once (cached in var/bench/portfolio/ by
scale, weeks and seed) and replays production in a fresh folder:

1. bootstrap: the first week's deliveries, the full job (reported, not compared);
2. weekly refresh: the last week's deliveries, the full `oversight_refresh` job exactly as the
   schedule runs it (delivery gate, registry replay, dbt build with tests, publish gate,
   publish, report), in a child process whose whole process tree (dbt included) is sampled for
   peak RSS; wall time per stage from Dagster's step events;
3. the floor for the same work: DuckDB reading the same files with typed `read_csv` (XLSX via
   calamine: DuckDB's excel extension is a download, not a package), reading the registry
   responses with `read_json`, executing the marts' compiled SQL (from that run's dbt
   manifest) and the forecast's Python once, the publish gate's rules as one SQL query per
   mart, and copying the marts into a new DuckDB file;
4. a refresh with no new deliveries (what can be skipped must be).

Prints one table per scale and the growth across scales; writes JSON and Markdown to
bench/results/ (git-ignored).

    make bench                                    # large, then 1x, 4x, 16x of demo
    uv run python -m bench.refresh --scales 1 4   # any scales: demo, large or a demo multiple
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import duckdb
import yaml

from core.settings import PROJECT_ROOT
from core.tables import markdown_table

CACHE = PROJECT_ROOT / "var" / "bench"
RESULTS = PROJECT_ROOT / "bench" / "results"

#: Dagster step -> benchmark stage.
STAGES = (
    "delivery gate + load",
    "registry replay",
    "dbt build + tests",
    "publish gate (GX)",
    "publish",
    "report",
    "Dagster + process start",
)
TARGET_RATIO, TARGET_RSS_GIB, TARGET_GATE_SHARE, TARGET_NOTHING_NEW_S = 2.0, 4.0, 0.5, 20.0


def stage_of(step_key: str) -> str:
    if step_key == "smo_deliveries":
        return "delivery gate + load"
    if step_key == "registry_studies":
        return "registry replay"
    if step_key == "warehouse_models":
        return "dbt build + tests"
    if step_key == "publish_gate":  # one step: every mart's checks (orchestration/defs/publish.py)
        return "publish gate (GX)"
    if step_key == "bi__oversight":
        return "publish"
    if step_key == "bi__oversight_report":
        return "report"
    return "Dagster + process start"


# -- portfolio ------------------------------------------------------------------------------


def portfolio(scale: str, weeks: int, seed: int) -> Path:
    """The generated portfolio, from cache when it was made before with the same arguments."""
    out = CACHE / "portfolio" / f"{scale}-w{weeks}-s{seed}"
    if not (out / "ground_truth.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        from synthetic.generate import generate

        print(f"generating the {scale} portfolio ({weeks} weeks, seed {seed}) into {out} ...")
        started = time.perf_counter()
        generate(out, scale=scale, weeks=weeks, seed=seed)
        print(f"  generated in {time.perf_counter() - started:.0f} s")
    return out


def delivery_dates(source: Path) -> list[dt.date]:
    return [dt.date.fromisoformat(d) for d in json.loads(
        (source / "ground_truth.json").read_text())["delivery_dates"]]  # fmt: skip


def files_of(source: Path, day: dt.date) -> list[Path]:
    """Delivery files of one date (the generator stamps each file's mtime with its date)."""
    return sorted(
        p
        for p in (source / "inbox").rglob("*")
        if p.is_file() and dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC).date() == day
    )


def deliver(source: Path, root: Path, files: list[Path]) -> int:
    inbox = root / "data" / "inbox"
    size = 0
    for path in files:
        target = inbox / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        size += path.stat().st_size
    return size


# -- one Dagster run in a child process -----------------------------------------------------


def _tree_rss(root_pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            children[ppid].append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            with open(f"/proc/{pid}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def run_job(root: Path, label: str, tags: dict[str, str] | None = None) -> dict:
    """Run oversight_refresh in a child process; wall time, peak tree RSS and step times."""
    out = root / f"run-{label}.json"
    env = {
        **os.environ,
        "SMO_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
        "SMO_DATA_DIR": str(root / "data"),
        "SMO_PUBLISH_DIR": str(root / "publish"),
        "SMO_INBOX_SETTLE_SECONDS": "0",
        "DAGSTER_HOME": str(root / "dagster_home"),
    }
    command = [sys.executable, "-m", "bench.refresh", "--child", str(out)]
    for key, value in (tags or {}).items():
        command += ["--tag", f"{key}={value}"]
    started = time.perf_counter()
    with open(root / f"run-{label}.log", "w") as log:
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak = 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(child.pid))
            time.sleep(0.1)
    wall = time.perf_counter() - started
    if child.returncode != 0 or not out.exists():
        raise SystemExit(f"the {label} run failed; see {root / f'run-{label}.log'}")
    result = json.loads(out.read_text())
    if not result["success"]:
        raise SystemExit(f"the {label} run failed; see {root / f'run-{label}.log'}")
    stages = dict.fromkeys(STAGES, 0.0)
    for step, seconds in result["steps"].items():
        stages[stage_of(step)] += seconds
    stages["Dagster + process start"] += wall - sum(result["steps"].values())
    return {"wall_s": wall, "peak_rss_bytes": peak, "stages": stages, **result}


def child(out: Path, tags: list[str]) -> None:
    """Inside the child: execute the job as production does and write what happened."""
    started = time.perf_counter()
    import dagster as dg

    from orchestration.demo import refresh_job

    imports = time.perf_counter() - started
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        started = time.perf_counter()
        result = dg.execute_job(
            dg.reconstructable(refresh_job),
            instance=instance,
            tags=dict(t.split("=", 1) for t in tags),
            raise_on_error=False,
        )
        execute = time.perf_counter() - started
        starts, steps = {}, {}
        for record in instance.all_logs(result.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == dg.DagsterEventType.STEP_START:
                starts[event.step_key] = record.timestamp
            elif (
                event.event_type
                in (
                    dg.DagsterEventType.STEP_SUCCESS,
                    dg.DagsterEventType.STEP_FAILURE,
                )
                and event.step_key in starts
            ):
                steps[event.step_key] = record.timestamp - starts[event.step_key]
        skipped = sorted(
            {e.step_key for e in result.all_events
             if e.event_type == dg.DagsterEventType.STEP_SKIPPED}
        )  # fmt: skip
    out.write_text(
        json.dumps(
            {
                "success": result.success,
                "run_id": result.run_id,
                "steps": steps,
                "skipped_steps": skipped,
                "imports_s": imports,
                "execute_s": execute,
            }
        )  # fmt: skip
    )


# -- the floor ------------------------------------------------------------------------------

_ENCODINGS = {"utf-8-sig": "utf-8", "utf-8": "utf-8", "cp1252": "latin-1", "utf-16": "utf-16"}


def _profile(source: Path, smo_id: str) -> dict:
    return yaml.safe_load((source / "profiles" / f"{smo_id}.yaml").read_text(encoding="utf-8"))


def load_floor(source: Path, files: list[Path], work: Path) -> float:
    """DuckDB reading the delivery files into typed tables, nothing validated."""
    import fastexcel

    db = work / "floor-load.duckdb"
    db.unlink(missing_ok=True)
    with duckdb.connect(str(db)) as con:
        started = time.perf_counter()
        for i, path in enumerate(files):
            profile = _profile(source, path.parent.name)
            options = profile["file"]
            # A feed entry may read workbooks under a CSV default (the sponsor's actions list).
            if options["type"] == "xlsx" or path.suffix.lower() == ".xlsx":
                book = fastexcel.read_excel(path)
                frame = book.load_sheet(0, header_row=options.get("header_row", 1) - 1).to_arrow()
                con.register("sheet", frame)
                con.execute(f"create table t{i} as from sheet")
                con.unregister("sheet")
                continue
            args = {
                "delim": options.get("delimiter", ","),
                "header": True,
                "encoding": _ENCODINGS.get(options.get("encoding", "utf-8"), "utf-8"),
                "dateformat": profile.get("date_format", "%Y-%m-%d"),
            }
            if options.get("decimal_comma") or options.get("decimal") == ",":
                args["decimal_separator"] = ","
            rendered = ", ".join(f"{k} = {v!r}" for k, v in args.items()).replace("True", "true")
            con.execute(f"create table t{i} as from read_csv('{path}', {rendered})")
        seconds = time.perf_counter() - started
    db.unlink(missing_ok=True)
    return seconds


def registry_floor(root: Path) -> float:
    with duckdb.connect() as con:
        started = time.perf_counter()
        # every recorded response parsed as JSON (inferring one schema across thousands of
        # nested records with union_by_name ran out of memory at `large`)
        con.execute(
            "create table r as from read_json_objects(?, maximum_object_size = 268435456)",
            [str(root / "data" / "registry" / "**" / "*.json")],
        )
        return time.perf_counter() - started


def _run_manifest(root: Path, run_id: str) -> dict:
    """The manifest dagster-dbt wrote for that run's dbt build (it has the compiled SQL)."""
    target = PROJECT_ROOT / "dbt_project" / "target"
    folders = sorted(target.glob(f"warehouse_models-{run_id[:7]}-*"))
    if not folders:
        raise SystemExit(f"no dbt target folder for run {run_id} under {target}")
    return json.loads((folders[-1] / "manifest.json").read_text())


def marts_floor(root: Path, run_id: str, work: Path) -> float:
    """Every model's compiled SQL executed directly, in dependency order, on a copy of the
    warehouse the run built (same catalog name), plus the forecast's Python once."""
    from forecasting.enrollment import forecast_tables

    manifest = _run_manifest(root, run_id)
    models = {
        uid: n for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "model" and n["config"].get("materialized") != "ephemeral"
    }  # fmt: skip
    order, seen = [], set()

    def visit(uid: str) -> None:
        if uid in seen or uid not in models:
            return
        seen.add(uid)
        for dep in models[uid]["depends_on"]["nodes"]:
            visit(dep)
        order.append(uid)

    for uid in sorted(models):
        visit(uid)
    copy_dir = work / "floor-marts"
    shutil.rmtree(copy_dir, ignore_errors=True)
    copy_dir.mkdir(parents=True)
    shutil.copy2(root / "warehouse.duckdb", copy_dir / "warehouse.duckdb")
    with duckdb.connect(str(copy_dir / "warehouse.duckdb")) as con:
        con.execute("set threads = 2")
        started = time.perf_counter()
        python_done = False
        for uid in order:
            node = models[uid]
            relation = f'"{node["schema"]}"."{node["alias"] or node["name"]}"'
            if node["language"] == "python":
                if not python_done:
                    forecast, fan = forecast_tables(
                        con.execute("from intermediate.int_site_week__enrollment").df(),
                        con.execute("from staging.stg_ctgov__studies").df(),
                        draws=int(node["config"].get("forecast_draws") or 2000),
                        base_seed=int(node["config"].get("forecast_seed") or 20261122),
                    )
                    con.register("forecast_floor", forecast)
                    con.register("fan_floor", fan)
                    con.execute("create or replace table marts.enrollment_forecast as "
                                "from forecast_floor")  # fmt: skip
                    con.execute("create or replace table marts.enrollment_forecast_path as "
                                "from fan_floor")  # fmt: skip
                    python_done = True
                continue
            kind = "view" if node["config"]["materialized"] == "view" else "table"
            con.execute(f"create or replace {kind} {relation} as {node['compiled_code']}")
        seconds = time.perf_counter() - started
    shutil.rmtree(copy_dir, ignore_errors=True)
    return seconds


def gate_and_publish_floor(root: Path, work: Path) -> tuple[float, float]:
    """The publish gate's rules as one SQL query per mart; the marts copied into a new file."""
    from expectations.publish_gate import mart_rules

    rules = mart_rules(json.loads((PROJECT_ROOT / "dbt_project/target/manifest.json").read_text()))
    with duckdb.connect(str(root / "warehouse.duckdb")) as con:
        started = time.perf_counter()
        for mart, rule in rules.items():
            checks = ["count(*)"]
            if rule.keys:
                keys = ", ".join(rule.keys)
                checks.append(f"count(*) - count(distinct ({keys}))")
            checks += [f"count(*) filter (where {c} is null)" for c in rule.not_null]
            for column, (low, high) in rule.ranges.items():
                if low is not None:
                    checks.append(f"count(*) filter (where {column} < {low})")
                if high is not None:
                    checks.append(f"count(*) filter (where {column} > {high})")
            con.execute(f"select {', '.join(checks)} from marts.{mart}").fetchall()
        gate = time.perf_counter() - started
        target = work / "floor-publish.duckdb"
        target.unlink(missing_ok=True)
        started = time.perf_counter()
        con.execute(f"attach '{target}' as floor_publish")
        for mart in rules:
            con.execute(f"create table floor_publish.main.{mart} as from marts.{mart}")
        con.execute("detach floor_publish")
        publish = time.perf_counter() - started
    target.unlink(missing_ok=True)
    return gate, publish


# -- one scale ------------------------------------------------------------------------------


def prepare_manifest(warehouse: Path) -> None:
    """Parse the dbt project against this warehouse path, as `make` does for the default one, so
    the runs use dbt's partial parsing like production instead of re-parsing every time."""
    subprocess.run(
        [str(Path(sys.executable).with_name("dagster-dbt")), "project", "prepare-and-package",
         "--file", "orchestration/lib/dbt.py"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "SMO_WAREHOUSE_PATH": str(warehouse),
             "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        check=True, capture_output=True,
    )  # fmt: skip


def bench_scale(scale: str, weeks: int, seed: int) -> dict:
    source = portfolio(scale, weeks, seed)
    dates = delivery_dates(source)
    root = CACHE / "runs" / f"{scale}-w{weeks}-s{seed}"
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    for folder in ("profiles", "registry"):
        shutil.copytree(source / folder, root / "data" / folder)
    for stale in (PROJECT_ROOT / "dbt_project" / "target").glob("warehouse_models-*"):
        shutil.rmtree(stale, ignore_errors=True)  # one folder per dbt run piles up otherwise
    prepare_manifest(root / "warehouse.duckdb")

    print(f"\n== {scale}: bootstrap with the deliveries of {dates[:-1]} ...")
    earlier = [f for d in dates[:-1] for f in files_of(source, d)]
    deliver(source, root, earlier)
    bootstrap = run_job(root, "bootstrap")
    print(f"   {bootstrap['wall_s']:.1f} s")

    weekly_files = files_of(source, dates[-1])
    size = deliver(source, root, weekly_files)
    print(f"== {scale}: weekly refresh with {len(weekly_files)} files ({size / 2**20:.0f} MiB) ...")
    weekly = run_job(root, "weekly")
    print(f"   {weekly['wall_s']:.1f} s, peak RSS {weekly['peak_rss_bytes'] / 2**30:.2f} GiB")

    print(f"== {scale}: floor ...")
    work = root / "floor"
    work.mkdir()
    gate_floor, publish_floor = gate_and_publish_floor(root, work)
    floors = {
        "delivery gate + load": load_floor(source, weekly_files, work),
        "registry replay": registry_floor(root),
        "dbt build + tests": marts_floor(root, weekly["run_id"], work),
        "publish gate (GX)": gate_floor,
        "publish": publish_floor,
        "report": 0.0,
        "Dagster + process start": 0.0,
    }

    print(f"== {scale}: refresh with no new deliveries ...")
    nothing_new = run_job(root, "nothing-new")
    print(f"   {nothing_new['wall_s']:.1f} s")

    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        rows = dict(con.execute(
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'raw'"
        ).fetchall())  # fmt: skip
        visits = con.execute("select count(*) from staging.stg_smo__visits").fetchall()[0][0]
    return {
        "scale": scale,
        "weeks": weeks,
        "seed": seed,
        "weekly_files": len(weekly_files),
        "weekly_bytes": size,
        "raw_rows": rows,
        "current_visits": visits,
        "bootstrap": bootstrap,
        "weekly": weekly,
        "floor": floors,
        "nothing_new": nothing_new,
    }


# -- report ---------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.1f}x" if b > 0 else "–"


def scale_table(result: dict) -> str:
    weekly, floor = result["weekly"], result["floor"]
    total, stages = weekly["wall_s"], weekly["stages"]
    floor_total = sum(floor.values())
    gate_share = floor["delivery gate + load"] / stages["delivery gate + load"]
    rows = [
        [stage, f"{stages[stage]:.1f}", f"{stages[stage] / total:.0%}", f"{floor[stage]:.1f}",
         _ratio(stages[stage], floor[stage])]
        for stage in STAGES
    ] + [
        ["**weekly refresh**", f"**{total:.1f}**", "100%", f"{floor_total:.1f}",
         f"**{_ratio(total, floor_total)}**"]
    ]  # fmt: skip
    lines = [
        f"### {result['scale']} ({result['weekly_files']} files, "
        f"{result['weekly_bytes'] / 2**20:.0f} MiB in the weekly delivery; "
        f"{result['current_visits']:,} current visits)",
        "",
        markdown_table(
            ["stage", "seconds", "share", "floor s", "ratio to floor"], rows, numeric={1, 2, 3, 4}
        ),
        "",
        f"- peak RSS of the process tree: {weekly['peak_rss_bytes'] / 2**30:.2f} GiB "
        f"(target <= {TARGET_RSS_GIB:.0f} GiB)",
        f"- delivery gate + load throughput: {gate_share:.0%} of DuckDB's typed load "
        f"(target >= {TARGET_GATE_SHARE:.0%})",
        f"- overall: {_ratio(total, floor_total)} the floor (target <= {TARGET_RATIO:.1f}x)",
        f"- refresh with no new deliveries: {result['nothing_new']['wall_s']:.1f} s "
        f"(target <= {TARGET_NOTHING_NEW_S:.0f} s; steps skipped: "
        f"{len(result['nothing_new']['skipped_steps'])})",
        f"- Dagster + process start: imports {weekly['imports_s']:.1f} s, run outside steps "
        f"{weekly['execute_s'] - sum(weekly['steps'].values()):.1f} s",
        f"- bootstrap run (first weeks, not compared): {result['bootstrap']['wall_s']:.1f} s",
    ]
    return "\n".join(lines)


def growth_table(results: list[dict]) -> str:
    if len(results) < 2:
        return ""
    base = results[0]
    header = ["scale", "current visits", "data x", "weekly refresh s", "time x", "floor s",
              "ratio to floor", "peak RSS GiB"]  # fmt: skip
    rows = []
    for r in results:
        data_x = r["current_visits"] / base["current_visits"]
        time_x = r["weekly"]["wall_s"] / base["weekly"]["wall_s"]
        floor_total = sum(r["floor"].values())
        rows.append(
            [r["scale"], f"{r['current_visits']:,}", f"{data_x:.1f}", f"{r['weekly']['wall_s']:.1f}",
             f"{time_x:.1f}", f"{floor_total:.1f}", _ratio(r["weekly"]["wall_s"], floor_total),
             f"{r['weekly']['peak_rss_bytes'] / 2**30:.2f}"]
        )  # fmt: skip
    table = markdown_table(header, rows, numeric=set(range(1, len(header))))
    return "\n".join(
        ["### Growth", "", table, "", "Cost grows linearly or better when `time x` <= `data x`."]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["large", "1", "4", "16"])
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--tag", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child), args.tag)
        return
    results = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        for scale in args.scales:
            results.append(bench_scale(scale, args.weeks, args.seed))
            _write(results, stamp)
            print("\n" + scale_table(results[-1]))
    finally:  # back to the default warehouse path `make demo` and `make dev` parse against
        prepare_manifest(PROJECT_ROOT / "var" / "warehouse.duckdb")
    print("\n" + growth_table([r for r in results if r["scale"] != "large"]))
    print(f"\nwritten: {RESULTS / f'refresh-{stamp}.md'} and .json")


def _write(results: list[dict], stamp: str) -> None:
    markdown = "\n\n".join(
        [f"# Refresh benchmark {stamp} (2 cores)"]
        + [scale_table(r) for r in results]
        + [growth_table([r for r in results if r["scale"] != "large"])]
    )
    (RESULTS / f"refresh-{stamp}.json").write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / f"refresh-{stamp}.md").write_text(markdown + "\n")


if __name__ == "__main__":
    main()
