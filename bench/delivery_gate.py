"""Delivery gate throughput on a large visits file, against DuckDB's own typed CSV load.

    uv run python -m bench.delivery_gate [rows=5000000] [--keep]

Writes a valid visits delivery of N rows (UTF-8 CSV, an SMO's own headers and codes, ISO
dates), then times, each in a fresh child process so peak RSS is per stage:
  floor : DuckDB `read_csv` with declared column types into a table (no validation)
  gate  : `ingest.gate.check_delivery` (read, map headers and codes, parse dates, contract)
  load  : gate + the transactional insert into raw.visits and the ledger (`process_file`)
Target (issue 3): gate throughput >= 50% of the floor's, peak RSS <= 4 GiB.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import yaml

PROFILE = {
    "smo_id": "SMO-BENCH",
    "profile_version": "bench-1",
    "file": {"type": "csv", "delimiter": ",", "encoding": "utf-8"},
    "date_format": "%Y-%m-%d",
    "feeds": {
        "visits": {
            "file_pattern": "visits_{delivery_date:%Y%m%d}.csv",
            "scope": "all_studies",
            "columns": {
                "Protocol": "study_id",
                "Subject ID": "subject_id",
                "Visit Code": "visit_id",
                "Visit": "visit_name",
                "Visit Status": "status",
                "Target Date": "planned_date",
                "Visit Date": "actual_date",
                "eCRF Entered": "crf_entry_date",
            },
            "codes": {
                "status": {"Done": "COMPLETED", "Missed": "MISSED", "Scheduled": "SCHEDULED"}
            },
        }
    },
}
FILE_NAME = "visits_20261116.csv"
REPEATS = 3  # each stage runs this many times in fresh processes; the median is reported


def write_visits(path: Path, rows: int) -> None:
    """A valid file: 20 visits per subject, dates before the delivery date, entry after visit."""
    duckdb.execute(
        f"""
        copy (
            select
                'SYN-' || lpad((i // 200000)::varchar, 3, '0') as "Protocol",
                'S' || lpad((i // 20)::varchar, 7, '0') as "Subject ID",
                'V' || lpad((i % 20 + 1)::varchar, 2, '0') as "Visit Code",
                'Week ' || ((i % 20) * 4)::varchar as "Visit",
                case when i % 31 = 0 then 'Missed' else 'Done' end as "Visit Status",
                date '2024-01-01' + (i % 600)::int as "Target Date",
                case when i % 31 = 0 then null else date '2024-01-01' + (i % 600)::int + (i % 3)::int end
                    as "Visit Date",
                case when i % 31 = 0 then null else date '2024-01-01' + (i % 600)::int + (i % 3)::int
                    + (i % 9)::int end as "eCRF Entered"
            from range({rows}) t(i)
        ) to '{path}' (header, delimiter ',')
        """
    )


FLOOR_SQL = """
create table visits as select * from read_csv('{path}', header = true, delim = ',',
    columns = {{'Protocol': 'VARCHAR', 'Subject ID': 'VARCHAR', 'Visit Code': 'VARCHAR',
                'Visit': 'VARCHAR', 'Visit Status': 'VARCHAR', 'Target Date': 'DATE',
                'Visit Date': 'DATE', 'eCRF Entered': 'DATE'}})
"""


def _stage(stage: str, workdir: str) -> None:
    """Runs in a child process; prints {"seconds": ...}."""
    import datetime as dt

    from ingest.gate import check_delivery  # imports are not part of the measurement
    from ingest.profiles import load_profile

    work = Path(workdir)
    path = work / FILE_NAME
    profile = load_profile(work / "SMO-BENCH.yaml")
    started = time.perf_counter()
    if stage == "floor":
        con = duckdb.connect(str(work / f"floor-{time.time_ns()}.duckdb"))
        con.execute(FLOOR_SQL.format(path=path))
        rows = con.execute("select count(*) from visits").fetchone()[0]
    elif stage == "gate":
        result = check_delivery(path, profile, received_at=dt.datetime(2026, 11, 16), roster=None)
        assert result.accepted, result.problems[:3]
        rows = result.row_count
    else:  # load: the pipeline's own per-file path, into a fresh warehouse
        import shutil

        from ingest.inbox import process_file
        from ingest.warehouse import ensure_schema

        inbox = work / f"inbox-{time.time_ns()}"
        inbox.mkdir()
        shutil.copy(path, inbox / FILE_NAME)
        started = time.perf_counter()
        con = duckdb.connect(str(work / f"wh-{time.time_ns()}.duckdb"))
        ensure_schema(con)
        outcome = process_file(
            con, inbox / FILE_NAME, profile, frozenset(),
            archive=work / "archive", quarantine=work / "quarantine",
        )  # fmt: skip
        assert outcome.status == "ACCEPTED", outcome
        rows = outcome.rows
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows}))


def _run_child(stage: str, workdir: Path) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run(
        [sys.executable, "-m", "bench.delivery_gate", "--stage", stage, str(workdir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # ru_maxrss of children is the max over all children so far; stages run largest-last is not
    # guaranteed, so report it only when it grew (else "<= previous").
    result["peak_rss_mib"] = after / 1024 if after > before else None
    return result


def main(rows: int, keep: bool) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    (workdir / "SMO-BENCH.yaml").write_text(yaml.safe_dump(PROFILE))
    path = workdir / FILE_NAME
    started = time.perf_counter()
    write_visits(path, rows)
    size_mib = path.stat().st_size / 2**20
    print(
        f"wrote {rows:,} visit rows, {size_mib:,.0f} MiB, in {time.perf_counter() - started:.1f} s"
    )
    results = {}
    for stage in ("floor", "gate", "load"):
        runs = [_run_child(stage, workdir) for _ in range(REPEATS)]
        best = sorted(runs, key=lambda r: r["seconds"])[REPEATS // 2]  # the median run
        best["peak_rss_mib"] = max((r["peak_rss_mib"] or 0) for r in runs) or None
        results[stage] = best
    floor = results["floor"]["seconds"]
    print(f"\n{'stage':<7} {'seconds':>8} {'rows/s':>12} {'vs floor':>9} {'peak RSS MiB':>13}")
    for stage, r in results.items():
        rss = f"{r['peak_rss_mib']:,.0f}" if r["peak_rss_mib"] else "-"
        throughput = r["rows"] / r["seconds"]
        ratio = floor / r["seconds"]
        print(f"{stage:<7} {r['seconds']:>8.2f} {throughput:>12,.0f} {ratio:>8.0%} {rss:>13}")
    print(f"\nmedian of {REPEATS} runs per stage, each in a fresh process")
    print("vs floor = floor time / stage time (throughput relative to DuckDB's typed read_csv)")
    if not keep:
        import shutil

        shutil.rmtree(workdir)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--stage":
        _stage(sys.argv[2], sys.argv[3])
    else:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        main(int(args[0]) if args else 5_000_000, keep="--keep" in sys.argv)
