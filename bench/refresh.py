"""End-to-end benchmark: the weekly refresh through Dagster, side by side with the bare-DuckDB floor.

For each scale it generates the synthetic portfolio once (cached in var/bench/portfolio/ by
scale, weeks and seed) and replays production:

1. bootstrap: the first weeks' deliveries, the full job (reported, not compared); the folder it
   leaves (warehouse, Dagster instance, data) is kept as the starting state;
2. then `--reps` repetitions (default 3), each: the folder restored from that starting state
   (same path, so dbt's partial parse stays valid) and
   a. the weekly refresh: the last week's deliveries, the full `oversight_refresh` job exactly
      as the schedule runs it, in a child process whose whole process tree (dbt included) is
      sampled for peak RSS; wall time per stage from Dagster's step events, dbt's per-node
      times from that run's run_results.json;
   b. the floor for the same work, right after it: DuckDB reading the same files with typed
      `read_csv` (XLSX via calamine: DuckDB's excel extension is a download, not a package),
      the registry responses with `read_json`, the marts' compiled SQL (from that run's dbt
      manifest) and the forecast's Python once, the publish gate's rules as one SQL query per
      mart, the marts copied into a new DuckDB file;
   c. a refresh with no new deliveries (what can be skipped must be); these are compared with
      the weekly refreshes they alternate with, so they need no floor of their own.
   Refresh and floor alternate (refresh, floor, no-op, refresh, floor, no-op, ...) so a load
   drift from other processes hits both; each pair gives a ratio and the median of those
   ratios is the result (bench/summary.py has the statistics and the targets).
3. `--profile`: one extra weekly refresh under cProfile (Dagster's process), the 20 functions
   with the most own time in the Markdown.

Prints one summary line per scale and an `overall:` line (the worst ratio to its target, and
whether every target holds); writes JSON and Markdown to bench/results/ (git-ignored).

    make bench                                          # large, then 1x, 4x, 16x of demo
    uv run python -m bench.refresh --scales 1 4         # any scales: demo, large or a multiple
    uv run python -m bench.refresh --scales 1 --reps 1  # quick look, no spread
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from functools import cache
from pathlib import Path

import duckdb
import yaml

from bench import summary as report
from core.settings import PROJECT_ROOT

CACHE = PROJECT_ROOT / "var" / "bench"
RESULTS = PROJECT_ROOT / "bench" / "results"
DBT_TARGET = PROJECT_ROOT / "dbt_project" / "target"

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


#: What a refresh's processes import (Dagster's with every definition, dbt's with its adapter,
#: the forecast models, the publish gate's great-expectations): `settle` reads their files.
WARM_IMPORTS = (
    "orchestration.defs.automation", "orchestration.defs.dbt_models", "orchestration.defs.publish",
    "orchestration.defs.registry", "orchestration.defs.resources",
    "orchestration.defs.smo_deliveries", "dbt.cli.main", "dbt.adapters.duckdb.impl",
    "forecasting.enrollment", "great_expectations",
)  # fmt: skip

_LIST_LOADED = """
import importlib, importlib.util, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
files = set()
try:  # shared libraries as mapped (Linux); elsewhere the modules' own files only
    with open("/proc/self/maps") as maps:
        files = {line.split()[-1] for line in maps if line.split()[-1].startswith("/")}
except OSError:
    pass
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None) or ""
    files.add(path)
    if path.endswith(".py"):
        files.add(importlib.util.cache_from_source(path))
print("\\n".join(sorted(f for f in files if f)))
"""


@cache
def code_files() -> tuple[Path, ...]:
    """Every file a refresh's imports read (modules, their bytecode, mapped shared libraries),
    listed once by a child that imports `WARM_IMPORTS`."""
    listed = subprocess.run(
        [sys.executable, "-c", _LIST_LOADED, *WARM_IMPORTS],
        cwd=PROJECT_ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return tuple(Path(line) for line in listed.splitlines() if Path(line).is_file())


def settle(*inputs: Path) -> None:
    """The page cache as a timed run should find it: nothing left to write, its code and inputs
    read.

    Without the sync the gigabytes a restore or a floor just wrote were flushed during the next
    run, at this machine's ~20 MB/s: a no-op refresh at `large` right after its floor took
    39-44 s, imports alone 1.7-4.4 s against 0.6 s.

    This VM also pages out whatever was not read for about a minute (the kernel's DAMON
    `pageout` scheme, /sys/kernel/mm/damon/admin: regions idle for 12 aggregations of 5 s, up to
    128 MiB/s): reading the 562 MB of files a refresh's imports load took 11-20 s a few minutes
    after the last run and 0.3-0.8 s right after it. Each refresh and each floor therefore
    starts with its code (`code_files`) and its inputs (files or folders) read once, untimed.
    The machine's other drift is not removed by this, only shown (`cpu_probe`)."""
    os.sync()
    for item in (i for i in [*code_files(), *inputs] if i.exists()):
        for path in [item] if item.is_file() else sorted(p for p in item.rglob("*") if p.is_file()):
            with open(path, "rb") as handle:
                while handle.read(1 << 24):
                    pass


def cpu_probe(iterations: int = 3_000_000) -> float:
    """Seconds of a fixed pure-Python loop: this VM's speed drifts (the same 1x refresh took
    20 s and, half an hour later with nothing else running, 35-44 s), and a repetition's probe
    shows whether it ran on a slower machine."""
    started, total = time.perf_counter(), 0
    for i in range(iterations):
        total += i
    return time.perf_counter() - started


def run_job(root: Path, logs: Path, label: str, profile: Path | None = None) -> dict:
    """Run oversight_refresh in a child process; wall time, peak tree RSS and step times.

    `profile`: the child runs under cProfile, its stats written there.
    """
    out = logs / f"run-{label}.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "SMO_WAREHOUSE_PATH": str(root / "warehouse.duckdb"),
        "SMO_DATA_DIR": str(root / "data"),
        "SMO_PUBLISH_DIR": str(root / "publish"),
        "SMO_INBOX_SETTLE_SECONDS": "0",
        "DAGSTER_HOME": str(root / "dagster_home"),
    }
    command = [sys.executable]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "bench.refresh", "--child", str(out)]
    data = root / "data"
    settle(root / "warehouse.duckdb", root / "dagster_home", data / "inbox", data / "registry",
           data / "profiles", *DBT_TARGET.glob("*.*"))  # fmt: skip
    started = time.perf_counter()
    with open(logs / f"run-{label}.log", "w") as log:
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        peak = 0
        while child.poll() is None:
            peak = max(peak, _tree_rss(child.pid))
            time.sleep(0.1)
    wall = time.perf_counter() - started
    if child.returncode != 0 or not out.exists():
        raise SystemExit(f"the {label} run failed; see {logs / f'run-{label}.log'}")
    result = json.loads(out.read_text())
    if not result["success"]:
        raise SystemExit(f"the {label} run failed; see {logs / f'run-{label}.log'}")
    return {"wall_s": wall, "peak_rss_bytes": peak, **result}


def child(out: Path) -> None:
    """Inside the child: execute the job as production does and write what happened."""
    started = time.perf_counter()
    import dagster as dg

    from orchestration.demo import refresh_job
    from orchestration.instance import open_instance

    imports = time.perf_counter() - started
    # the instance production runs on: $DAGSTER_HOME with the project's dagster.yaml (its
    # event log storage and pools), not a test instance's defaults
    with open_instance() as instance:
        started = time.perf_counter()
        result = dg.execute_job(
            dg.reconstructable(refresh_job),
            instance=instance,
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


def _run_target(run_id: str) -> Path:
    """The dbt target folder dagster-dbt made for that run's build (manifest, run_results)."""
    folders = sorted((DBT_TARGET).glob(f"warehouse_models-{run_id[:7]}-*"))
    if not folders:
        raise SystemExit(f"no dbt target folder for run {run_id} under {DBT_TARGET}")
    return folders[-1]


def _run_manifest(root: Path, run_id: str) -> dict:
    """The manifest dagster-dbt wrote for that run's dbt build (it has the compiled SQL)."""
    return json.loads((_run_target(run_id) / "manifest.json").read_text())


def dbt_timings(run_id: str) -> dict | None:
    """dbt's per-node times of that run (None, said in the Markdown, when dbt did not run)."""
    path = _run_target(run_id) / "run_results.json"
    return report.dbt_profile(json.loads(path.read_text())) if path.exists() else None


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


def floor(root: Path, source: Path, files: list[Path], run_id: str) -> dict[str, float]:
    """The floor of the weekly refresh just run in `root`, per stage."""
    work = root / "floor"
    work.mkdir(exist_ok=True)
    settle(root / "warehouse.duckdb", root / "data" / "registry", *files)
    gate_floor, publish_floor = gate_and_publish_floor(root, work)
    floors = {
        "delivery gate + load": load_floor(source, files, work),
        "registry replay": registry_floor(root),
        "dbt build + tests": marts_floor(root, run_id, work),
        "publish gate": gate_floor,
        "publish": publish_floor,
        "report": 0.0,
        "Dagster + process start": 0.0,
    }
    shutil.rmtree(work, ignore_errors=True)
    return floors


def restore(snapshot: Path, root: Path) -> None:
    """The run folder back to the bootstrapped state, at the same path (dbt's partial parse and
    the fingerprint see the same warehouse path every repetition)."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(snapshot, root)


def cprofile_text(path: Path, top: int = 20) -> str:
    """The functions with the most own time (cumulative time is all Dagster's wrappers)."""
    buffer = io.StringIO()
    stats = pstats.Stats(str(path), stream=buffer).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    text = buffer.getvalue()
    return text[text.index("ncalls") :] if "ncalls" in text else text


def bench_scale(scale: str, weeks: int, seed: int, reps: int, profile: bool = False) -> dict:
    source = portfolio(scale, weeks, seed)
    dates = delivery_dates(source)
    name = f"{scale}-w{weeks}-s{seed}"
    root, snapshot, logs = (CACHE / "runs" / f"{name}{suffix}" for suffix in ("", "-boot", "-logs"))
    for folder in (root, snapshot, logs):
        shutil.rmtree(folder, ignore_errors=True)
    logs.mkdir(parents=True)
    (root / "data").mkdir(parents=True)
    for folder in ("profiles", "registry"):
        shutil.copytree(source / folder, root / "data" / folder)
    for stale in DBT_TARGET.glob("warehouse_models-*"):
        shutil.rmtree(stale, ignore_errors=True)  # one folder per dbt run piles up otherwise
    # No parse per scale: `make setup` parsed with `smo-dbt`, whose saved state holds for a
    # warehouse at any path named warehouse.duckdb (orchestration/lib/dbt_cli.py).

    print(f"\n== {scale}: bootstrap with the deliveries of {dates[:-1]} ...")
    deliver(source, root, [f for d in dates[:-1] for f in files_of(source, d)])
    bootstrap = run_job(root, logs, "bootstrap")
    print(f"   {bootstrap['wall_s']:.1f} s")
    shutil.copytree(root, snapshot)

    weekly_files = files_of(source, dates[-1])
    size = sum(p.stat().st_size for p in weekly_files)
    print(f"== {scale}: {reps} x (weekly refresh with {len(weekly_files)} files "
          f"({size / 2**20:.0f} MiB), floor, refresh with no new deliveries) ...")  # fmt: skip
    repetitions = []
    for i in range(1, reps + 1):
        restore(snapshot, root)
        deliver(source, root, weekly_files)
        load, probe = os.getloadavg()[0], cpu_probe()
        weekly = run_job(root, logs, f"weekly-{i}")
        weekly["dbt"] = dbt_timings(weekly["run_id"])
        floors = floor(root, source, weekly_files, weekly["run_id"])
        nothing_new = run_job(root, logs, f"nothing-new-{i}")
        for stale in DBT_TARGET.glob(f"warehouse_models-{weekly['run_id'][:7]}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        repetitions.append(
            {
                "weekly": weekly,
                "floor": floors,
                "nothing_new": nothing_new,
                "load_1m": load,
                "cpu_probe_s": probe,
            }  # fmt: skip
        )
        print(f"   rep {i}: refresh {weekly['wall_s']:.1f} s, floor {sum(floors.values()):.1f} s, "
              f"no-op {nothing_new['wall_s']:.1f} s, peak RSS "
              f"{weekly['peak_rss_bytes'] / 2**30:.2f} GiB (load {load:.1f})")  # fmt: skip

    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        rows = dict(con.execute(
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'raw'"
        ).fetchall())  # fmt: skip
        visits = con.execute("select count(*) from staging.stg_smo__visits").fetchall()[0][0]

    profiled = None
    if profile:
        print(f"== {scale}: one more weekly refresh under cProfile ...")
        restore(snapshot, root)
        deliver(source, root, weekly_files)
        stats = logs / "weekly-profile.prof"
        run_job(root, logs, "weekly-profile", profile=stats)
        profiled = cprofile_text(stats)
    shutil.rmtree(snapshot, ignore_errors=True)
    return {
        "scale": scale,
        "weeks": weeks,
        "seed": seed,
        "weekly_files": len(weekly_files),
        "weekly_bytes": size,
        "raw_rows": rows,
        "current_visits": visits,
        "bootstrap": bootstrap,
        "reps": repetitions,
        "summary": report.summarize(scale, repetitions),
        "cprofile": profiled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", nargs="+", default=["large", "1", "4", "16"])
    parser.add_argument("--weeks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3, help="refresh/floor pairs per scale")
    parser.add_argument("--profile", action="store_true",
                        help="one extra weekly refresh per scale under cProfile")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child))
        return
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    results = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    for scale in args.scales:
        results.append(bench_scale(scale, args.weeks, args.seed, args.reps, args.profile))
        _write(results, stamp)
        print("\n" + report.summary_line(results[-1]["summary"]))
    print("")
    for result in results:
        print(report.summary_line(result["summary"]))
    print(report.overall_line([r["summary"] for r in results]))
    print(f"\nwritten: {RESULTS / f'refresh-{stamp}.md'} and .json")


def _write(results: list[dict], stamp: str) -> None:
    title = f"Refresh benchmark {stamp} (2 cores)"
    (RESULTS / f"refresh-{stamp}.json").write_text(json.dumps(results, indent=2, default=str))
    (RESULTS / f"refresh-{stamp}.md").write_text(report.markdown(results, title))


if __name__ == "__main__":
    main()
