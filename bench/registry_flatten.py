"""Time `ingest.registry.flatten.flatten_studies` on 100k registry records.

The 786 real records of ../shared/data/ctgov/exports are replicated under new NCT ids (the copies
share everything but their identification module) up to the requested count, then flattened once.
Prints records/second, the table sizes and the process's peak RSS.

Usage: `uv run python -m bench.registry_flatten [records]` from the project root (default 100000).
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

from core.settings import PROJECT_ROOT
from ingest.registry.flatten import flatten_studies
from ingest.registry.sources import iter_export

EXPORTS = PROJECT_ROOT.parent / "shared" / "data" / "ctgov" / "exports"
FILES = ("nsclc_100.json", "registered_2023_06_50.json", "NCT02513394.json", "urology_635.json.zip")


def peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def replicate(records: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        record = records[i % len(records)]
        section = record["protocolSection"]
        ident = {**section["identificationModule"], "nctId": f"NCT{90_000_000 + i:08d}"}
        out.append({**record, "protocolSection": {**section, "identificationModule": ident}})
    return out


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 100_000
    if not EXPORTS.is_dir():
        print(f"reference exports not found at {EXPORTS}", file=sys.stderr)
        return 2
    source = [r for name in FILES for r in iter_export(EXPORTS / name)]
    records = replicate(source, count)
    rss_before = peak_rss_mib()

    started = time.perf_counter()
    tables = flatten_studies(records)
    elapsed = time.perf_counter() - started

    sizes = ", ".join(f"{name} {frame.height:,}" for name, frame in tables.tables().items())
    print(f"flattened {count:,} records ({len(source)} real ones replicated) in {elapsed:.2f} s")
    print(f"{count / elapsed:,.0f} records/s; rows: {sizes}")
    print(f"peak RSS {peak_rss_mib():,.0f} MiB (input records loaded: {rss_before:,.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
