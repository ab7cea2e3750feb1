"""Issue 18: registry benchmarks with a minimum cohort, and a study missing from the registry
as one finding. The registry marts are rebuilt by dbt on a refreshed warehouse whose peer
cohorts were cut to 0, 1, 4 and 5 studies."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import duckdb

from orchestration.lib.dbt import DBT_EXECUTABLE, DBT_PROJECT_DIR


def _build_registry_marts(warehouse: Path, tmp: Path, **env: str) -> None:
    done = subprocess.run(
        [DBT_EXECUTABLE, "build", "--quiet", "--select", "registry_benchmark", "registry_hygiene",
         "--target-path", str(tmp / "target"), "--log-path", str(tmp / "logs")],
        cwd=DBT_PROJECT_DIR, env={**os.environ, "SMO_WAREHOUSE_PATH": str(warehouse), **env},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _keep_peers(con: duckdb.DuckDBPyConnection, nct_id: str, keep: int) -> None:
    """Drop all but `keep` of the portfolio study's peers from the registry tables."""
    peers = [
        n
        for (n,) in con.execute(
            """
            select distinct s.nct_id from registry.studies s
            join registry.conditions c on c.nct_id = s.nct_id and c.kind = 'reported'
            where s.role = 'peer' and c.condition = (
                select condition from registry.conditions
                where nct_id = ? and kind = 'reported' order by seq limit 1)
            order by 1
            """,
            [nct_id],
        ).fetchall()
    ]
    assert len(peers) >= keep
    con.execute("delete from registry.studies where nct_id in ?", [peers[keep:]])


def _study_rows(con) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in con.execute(
            "select nct_id, peer_studies, peer_percentile, peer_percentile_reason, "
            "peer_median_rate from marts.registry_benchmark where level = 'study'"
        ).fetchall()
    }


def test_percentiles_need_a_minimum_cohort_and_a_missing_study_is_one_finding(
    refreshed_env: Path, tmp_path: Path
):
    warehouse = refreshed_env / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ids = [n for (n,) in con.execute(
            "select nct_id from registry.studies where role = 'portfolio' order by 1").fetchall()]  # fmt: skip
        assert len(ids) == 4
        for nct_id, keep in zip(ids, (0, 1, 4, 5), strict=True):
            _keep_peers(con, nct_id, keep)
    _build_registry_marts(warehouse, tmp_path)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = _study_rows(con)
        sites = con.execute(
            "select nct_id, count(*), count(peer_percentile), count(peer_percentile_reason) "
            "from marts.registry_benchmark where level = 'site' group by 1"
        ).fetchall()
    for nct_id, n in zip(ids[:3], (0, 1, 4), strict=True):
        assert rows[nct_id] == (n, None, f"too few peers ({n})", None), nct_id
    peers, percentile, reason, median = rows[ids[3]]
    assert peers == 5 and reason is None and median is not None
    assert percentile in {0.0, 20.0, 40.0, 60.0, 80.0, 100.0}
    for nct_id, total, with_percentile, with_reason in sites:
        enough = nct_id == ids[3]
        assert (with_percentile, with_reason) == ((total, 0) if enough else (0, total)), nct_id

    # the minimum is configuration: with SMO_PEER_MIN_COHORT=1 one peer is enough
    _build_registry_marts(warehouse, tmp_path, SMO_PEER_MIN_COHORT="1")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = _study_rows(con)
    assert rows[ids[0]][2] == "too few peers (0)" and rows[ids[0]][1] is None
    assert rows[ids[1]][1] in {0.0, 100.0} and rows[ids[1]][2] is None

    # a study the registry does not know: one study-level finding, its sites not each missing
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from registry.studies where nct_id = ?", [ids[3]])
        con.execute("delete from registry.locations where nct_id = ?", [ids[3]])
        before = dict(con.execute(
            "select finding, count(*) from marts.registry_hygiene where nct_id = ? group by 1",
            [ids[0]]).fetchall())  # fmt: skip
    _build_registry_marts(warehouse, tmp_path)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        findings = con.execute(
            "select finding, study_id, smo_id, site_id, registry_value from marts.registry_hygiene "
            "where nct_id = ? order by 1",
            [ids[3]],
        ).fetchall()
        other = dict(con.execute(
            "select finding, count(*) from marts.registry_hygiene where nct_id = ? group by 1",
            [ids[0]]).fetchall())  # fmt: skip
        rows = _study_rows(con)
    assert [f[0] for f in findings] == ["study_missing_from_registry"]
    assert findings[0][2:4] == (None, None) and ids[3] in findings[0][4]
    assert other == before  # the other studies' findings are unchanged
    assert rows[ids[3]][:3] == (0, None, "study not in the registry")
