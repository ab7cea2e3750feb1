"""Registry records kept as versions in DuckDB; later runs fetch only what changed."""

from __future__ import annotations

import json
import shutil

import duckdb

from ingest.registry import ReplaySource
from ingest.registry import store as registry_store


def _run(con, source, ids):
    registry_store.ensure_schema(con)
    since = registry_store.previous_data_timestamp(con)
    stored = {
        n: r for n, (role, r) in registry_store.latest_records(con).items() if role == "portfolio"
    }
    summary = registry_store.fetch_registry(
        source, ids, since=since, stored=stored, peer_start_within_years=10, peer_cohort_max=500
    )
    new = registry_store.store(con, summary, source_name="test", requests=0, retries=0)
    return summary, new, registry_store.rebuild_flat_tables(con)


def test_first_run_fetches_portfolio_and_peers_then_only_updates(small_portfolio, tmp_path):
    replay = tmp_path / "registry"
    shutil.copytree(small_portfolio / "registry", replay)
    truth = json.loads((small_portfolio / "ground_truth.json").read_text())["registry"]
    ids = truth["portfolio_nct_ids"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))

    first, new, counts = _run(con, ReplaySource(replay), ids)
    assert first.since is None
    assert sorted(r["protocolSection"]["identificationModule"]["nctId"] for role, r in first.records
                  if role == "portfolio") == sorted(ids)  # fmt: skip
    assert sum(role == "peer" for role, _ in first.records) == truth["peer_count"]
    assert new == counts["studies"] == len(ids) + truth["peer_count"]
    roles = dict(con.execute("select role, count(*) from registry.studies group by 1").fetchall())
    assert roles == {"portfolio": len(ids), "peer": truth["peer_count"]}

    # The registry moves on: one peer record is updated after the stored data timestamp.
    peer_file = next(p for p in sorted((replay / "studies").glob("NCT8*.json")))
    record = json.loads(peer_file.read_text())
    status = record["protocolSection"]["statusModule"]
    status["lastUpdatePostDateStruct"]["date"] = "2026-12-01"
    status["overallStatus"] = "COMPLETED"
    record["protocolSection"]["designModule"]["enrollmentInfo"]["count"] += 1
    peer_file.write_text(json.dumps(record))
    (replay / "version.json").write_text(json.dumps({"dataTimestamp": "2026-12-02T09:00:00"}))

    second, new, _ = _run(con, ReplaySource(replay), ids)
    assert second.since == "2026-11-16T09:00:00"
    fetched = {r["protocolSection"]["identificationModule"]["nctId"] for _, r in second.records}
    assert record["protocolSection"]["identificationModule"]["nctId"] in fetched
    assert len(fetched) < len(ids) + truth["peer_count"]  # only records updated since
    assert new == 1
    versions = con.execute(
        "select count(*) from registry.raw_studies where nct_id = ?",
        [record["protocolSection"]["identificationModule"]["nctId"]],
    ).fetchone()[0]
    assert versions == 2  # both versions kept
    enrollment = con.execute(
        "select enrollment_count from registry.studies where nct_id = ?",
        [record["protocolSection"]["identificationModule"]["nctId"]],
    ).fetchone()[0]
    assert enrollment == record["protocolSection"]["designModule"]["enrollmentInfo"]["count"]


def test_a_new_roster_study_is_fetched_in_full_on_an_incremental_run(small_portfolio, tmp_path):
    replay = tmp_path / "registry"
    shutil.copytree(small_portfolio / "registry", replay)
    ids = json.loads((small_portfolio / "ground_truth.json").read_text())["registry"][
        "portfolio_nct_ids"
    ]
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    _run(con, ReplaySource(replay), ids[:-1])
    second, _, _ = _run(con, ReplaySource(replay), ids)
    portfolio = {r["protocolSection"]["identificationModule"]["nctId"] for role, r in second.records
                 if role == "portfolio"}  # fmt: skip
    assert ids[-1] in portfolio
