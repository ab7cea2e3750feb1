"""The synthetic portfolio: deterministic, accepted by the gate, and true to its ground truth."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import duckdb
import pytest

from ingest.inbox import process_inbox
from synthetic.generate import generate


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path):
    first, second, other = (tmp_path / n for n in ("a", "b", "c"))
    generate(first, scale=0.1, weeks=2, seed=3)
    generate(second, scale=0.1, weeks=2, seed=3)
    generate(other, scale=0.1, weeks=2, seed=4)
    a, b = digest(first), digest(second)
    assert a == b
    assert any(name.endswith(".xlsx") for name in a)  # the XLSX dialect is covered too
    assert digest(other) != a


def test_portfolio_has_four_dialects_and_partial_feeds(small_portfolio):
    truth = json.loads((small_portfolio / "ground_truth.json").read_text())
    dialects = {s["dialect"] for s in truth["smos"]}
    assert dialects == {"iberia", "americas", "nordic", "sakura"}
    assert any(len(s["feeds"]) < 6 for s in truth["smos"])  # some SMOs send only some feeds
    for smo in truth["smos"]:
        names = [p.name for p in (small_portfolio / "inbox" / smo["smo_id"]).iterdir()]
        assert len(names) >= 3 * len(smo["feeds"])  # every feed, every one of 3 weeks
    countries = {c for c in ("ES", "US", "SE", "JP")}
    assert countries  # several continents: checked on the loaded roster below


@pytest.fixture(scope="module")
def loaded(small_portfolio, tmp_path_factory):
    """The whole small portfolio through the delivery gate into a warehouse."""
    work = tmp_path_factory.mktemp("loaded")
    shutil.copytree(small_portfolio, work, dirs_exist_ok=True)
    con = duckdb.connect(str(work / "warehouse.duckdb"))
    summary = process_inbox(con, inbox=work / "inbox", archive=work / "archive",
                            quarantine=work / "quarantine", profiles_dir=work / "profiles")  # fmt: skip
    truth = json.loads((work / "ground_truth.json").read_text())
    yield con, summary, truth
    con.close()


def current(con, feed: str) -> str:
    from ingest.warehouse import current_rows_sql

    return f"({current_rows_sql(feed)})"


def test_every_generated_delivery_is_accepted(loaded):
    con, summary, _ = loaded
    assert summary.outcomes and summary.skipped == []
    assert {o.status for o in summary.outcomes} <= {"ACCEPTED", "SUPERSEDED"}
    continents = con.execute(
        f"select count(distinct country) from {current(con, 'sites')}"
    ).fetchone()[0]
    assert continents >= 8


def site_metric(con, sql: str) -> dict[tuple[str, str], float]:
    return {(r[0], r[1]): r[2] for r in con.execute(sql).fetchall() if r[2] is not None}


def planted(truth, role):
    return [(s["study_id"], s["site_id"]) for s in truth["planted_sites"] if s["role"] == role]


def others(metric, study, exclude):
    return [v for (st, site), v in metric.items() if st == study and (st, site) not in exclude]


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def test_ground_truth_enrollment_sites(loaded):
    con, _, truth = loaded
    randomized = site_metric(con, f"""
        select s.study_id, s.site_id, count(r.randomized_date) / greatest(1, date_diff('day', any_value(s.activation_date), date '2026-11-16') / 30.44)
        from {current(con, 'sites')} s left join {current(con, 'subjects')} r using (smo_id, study_id, site_id)
        where s.activation_date is not null group by all""")  # fmt: skip
    planted_all = {(s["study_id"], s["site_id"]) for s in truth["planted_sites"]}
    for key in planted(truth, "never_enrolling"):
        assert randomized[key] == 0
    for key in planted(truth, "slow_enrolling"):
        assert randomized[key] < 0.5 * median(others(randomized, key[0], planted_all))


def test_ground_truth_screen_failure_deviation_lag_and_staffing_sites(loaded):
    con, _, truth = loaded
    planted_all = {(s["study_id"], s["site_id"]) for s in truth["planted_sites"]}
    sf_rate = site_metric(con, f"""
        select study_id, site_id, count(screen_failed_date) / count(*) from {current(con, 'subjects')}
        group by all having count(*) >= 3""")  # fmt: skip
    for key in planted(truth, "high_screen_failure"):
        assert sf_rate[key] > 2 * median(others(sf_rate, key[0], planted_all))
    important = site_metric(con, f"""
        select s.study_id, s.site_id, count(d.deviation_id) filter (where d.severity = 'IMPORTANT') / count(distinct s.subject_id)
        from {current(con, 'subjects')} s left join {current(con, 'deviations')} d using (smo_id, study_id, site_id)
        group by all""")  # fmt: skip
    for key in planted(truth, "many_important_deviations"):
        assert important[key] > 2 * median(others(important, key[0], planted_all))
    for key in planted(truth, "under_reporting_deviations"):
        assert important[key] == 0
    lag = site_metric(con, f"""
        select s.study_id, s.site_id, avg(date_diff('day', v.actual_date, v.crf_entry_date))
        from {current(con, 'visits')} v join {current(con, 'subjects')} s using (smo_id, study_id, subject_id)
        group by all""")  # fmt: skip
    for key in planted(truth, "long_entry_lag"):
        assert lag[key] > 3 * median(others(lag, key[0], planted_all))
    crc_changes = dict(con.execute(f"""
        select site_id, count(*) from {current(con, 'staffing')} where role = 'CRC' group by all""").fetchall())  # fmt: skip
    churn = [s["site_id"] for s in truth["planted_sites"] if s["role"] == "crc_turnover"]
    normal = [v for k, v in crc_changes.items() if k not in churn]
    for site in churn:
        assert crc_changes.get(site, 0) > 3 * median(normal)


def test_ground_truth_late_paying_smo(loaded):
    con, _, truth = loaded
    cycle = dict(con.execute(f"""
        select smo_id, median(date_diff('day', trigger_date, paid_date)) from {current(con, 'payments')}
        where paid_date is not null group by all""").fetchall())  # fmt: skip
    [late] = truth["late_paying_smos"]
    assert cycle[late] > 2 * max(v for k, v in cycle.items() if k != late)


def test_ground_truth_retroactive_edits_are_in_the_deliveries(loaded):
    con, _, truth = loaded
    edits = {e["kind"]: e for e in truth["retroactive_edits"]}
    assert set(edits) == {"subject_field_changed", "deviation_deleted", "deviation_downgraded"}

    def value(feed, key_col, key, col, date):
        rows = con.execute(
            f"select r.{col} from raw.{feed} r join ops.deliveries d on d.delivery_id = r._delivery_id "
            f"where r.{key_col} = ? and d.delivery_date = ?",
            [key, date],
        ).fetchall()
        return [r[0] for r in rows]

    moved = edits["subject_field_changed"]
    before = value(
        "subjects", "subject_id", moved["key"], "randomized_date", moved["previous_delivery_date"]
    )
    after = value(
        "subjects", "subject_id", moved["key"], "randomized_date", moved["changed_in_delivery_date"]
    )
    assert [str(d) for d in before] == [moved["old"]] and [str(d) for d in after] == [moved["new"]]
    deleted = edits["deviation_deleted"]
    assert value(
        "deviations", "deviation_id", deleted["key"], "severity", deleted["previous_delivery_date"]
    )
    assert (
        value(
            "deviations",
            "deviation_id",
            deleted["key"],
            "severity",
            deleted["changed_in_delivery_date"],
        )
        == []
    )
    down = edits["deviation_downgraded"]
    assert value(
        "deviations", "deviation_id", down["key"], "severity", down["previous_delivery_date"]
    ) == ["IMPORTANT"]
    assert value(
        "deviations", "deviation_id", down["key"], "severity", down["changed_in_delivery_date"]
    ) == ["NON_IMPORTANT"]


def test_registry_fixtures_cover_the_portfolio_and_are_marked_synthetic(small_portfolio):
    truth = json.loads((small_portfolio / "ground_truth.json").read_text())
    studies = {
        p.stem: json.loads(p.read_text())
        for p in (small_portfolio / "registry" / "studies").glob("*.json")
    }
    for nct in truth["registry"]["portfolio_nct_ids"]:
        assert studies[nct]["protocolSection"]["identificationModule"]["briefTitle"].startswith(
            "[SYNTHETIC]"
        )
    peers = [
        s
        for s in studies.values()
        if s["protocolSection"]["statusModule"]["overallStatus"] == "COMPLETED"
    ]
    assert len(peers) == truth["registry"]["peer_count"] > 0
    assert truth["registry"]["roster_sites_missing_from_registry"]
    assert truth["registry"]["stale_registry_studies"]
