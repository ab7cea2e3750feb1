"""`smo-oversight evidence`: the inspection pack of a study, from the refreshed small portfolio.

The pack is written by the real CLI from the real publish and warehouse copy; what it holds is
compared with independent queries of the copy's ops tables, never with its own code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import zipfile
from pathlib import Path

import duckdb
import polars as pl
import pytest

from cli.main import main
from publishing.evidence import ACTIONS_MART, parse_week

STUDY = "SYN-001"


@pytest.fixture
def env(refreshed_portfolio: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI pointed at the refreshed portfolio (read-only: the pack goes to tmp_path)."""
    monkeypatch.setenv("SMO_PUBLISH_DIR", str(refreshed_portfolio / "publish"))
    monkeypatch.setenv("SMO_WAREHOUSE_PATH", str(refreshed_portfolio / "warehouse.duckdb"))
    return refreshed_portfolio


def _snapshot(root: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(root / "warehouse.snapshot.duckdb"), read_only=True)


def _weeks(root: Path) -> list[dt.date]:
    with _snapshot(root) as con:
        return [
            w
            for (w,) in con.execute(
                "select distinct as_of_date from marts.deliveries_used order by 1"
            ).fetchall()
        ]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pack_holds_every_file_its_index_lists(env: Path, tmp_path: Path):
    out = tmp_path / "pack"
    assert main(["evidence", "--study", STUDY, "--out", str(out)]) == 0

    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk - {"manifest.json"} == set(listed)
    for path, entry in listed.items():
        assert _sha(out / path) == entry["sha256"], path
        assert (out / path).stat().st_size == entry["bytes"], path
    # index.html links only to files of the pack, relative, and names every table file
    links = set(re.findall(r'href="([^"]+)"', (out / "index.html").read_text()))
    assert links and all((out / link).is_file() for link in links)
    assert {p for p in listed if p.startswith("tables/")} <= links
    assert manifest["weeks"] == [str(w) for w in _weeks(env)]
    # CSV and Parquet of one table hold the same rows
    for name in ("site_flags", "lineage", "gate_results"):
        csv = pl.read_csv(out / f"tables/{name}.csv", infer_schema=False)
        parquet = pl.read_parquet(out / f"tables/{name}.parquet")
        assert csv.height == parquet.height == listed[f"tables/{name}.csv"]["rows"] > 0
    # the zip beside it holds the same files, byte for byte
    with zipfile.ZipFile(tmp_path / "pack.zip") as archive:
        names = {n.removeprefix("pack/") for n in archive.namelist()}
        assert names == on_disk
        for name in on_disk:
            assert archive.read(f"pack/{name}") == (out / name).read_bytes()
    # no publish of the earlier weeks is kept: the index says so instead of rendering another
    index = (out / "index.html").read_text()
    assert index.count("no report kept") == len(manifest["weeks"]) - 1
    # the demo's actions list is published: the study's actions, their list's lineage and gates
    assert "no actions feed published" not in index
    with duckdb.connect(str(env / "publish/oversight.duckdb"), read_only=True) as con:
        expected = {
            r[0]
            for r in con.execute(
                f"select action_id from {ACTIONS_MART} where study_id = ?", [STUDY]
            ).fetchall()
        }
    packed = pl.read_parquet(out / "tables/actions.parquet")
    assert expected and set(packed["action_id"]) <= expected
    lists = pl.read_parquet(out / "tables/actions_lineage.parquet")
    assert set(lists["delivery_id"]) == set(packed["delivery_id"]) and lists.height > 0
    gated = set(pl.read_parquet(out / "tables/gate_results.parquet")["delivery_id"])
    assert set(lists["delivery_id"]) <= gated


def _action_lists(env: Path) -> set[int]:
    """The actions list deliveries the study's published actions come from."""
    with duckdb.connect(str(env / "publish/oversight.duckdb"), read_only=True) as con:
        rows = con.execute(
            f"select distinct delivery_id from {ACTIONS_MART} where study_id = ?", [STUDY]
        ).fetchall()
    return {r[0] for r in rows}


def test_gate_results_and_lineage_equal_the_ops_tables(env: Path, tmp_path: Path):
    weeks = _weeks(env)
    first, last = weeks[1], weeks[-1]
    out = tmp_path / "pack"
    assert (
        main(
            [
                "evidence",
                "--study",
                STUDY,
                "--from",
                str(first),
                "--to",
                str(last),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    lineage = pl.read_parquet(out / "tables/lineage.parquet")
    gates = pl.read_parquet(out / "tables/gate_results.parquet")
    with _snapshot(env) as con:
        serving = {
            s
            for (s,) in con.execute(
                "select distinct smo_id from ops.current_deliveries where study_id = ?", [STUDY]
            ).fetchall()
        }
        # independent of the marts: the latest week's lineage is the current delivery pointers
        current = set(
            con.execute(
                "select smo_id, feed, delivery_id from ops.current_deliveries"
                " where study_id = ? or (study_id = '*' and list_contains(?, smo_id))",
                [STUDY, sorted(serving)],
            ).fetchall()
        )
        # every week: the warehouse's lineage mart joined to the ledger
        expected = con.execute(
            """select u.as_of_date, u.smo_id, u.feed, u.delivery_id, d.file_name, d.sha256,
                      d.received_at, d.status
               from marts.deliveries_used as u join ops.deliveries as d using (delivery_id)
               where u.as_of_date between ? and ?
                 and (u.study_id = ? or (u.study_id is null and list_contains(?, u.smo_id)))
               order by all""",
            [first, last, STUDY, sorted(serving)],
        ).fetchall()
        ids = sorted({row[3] for row in expected} | _action_lists(env))
        expected_gates = con.execute(
            "select * from ops.gate_results where list_contains(?, delivery_id) order by all",
            [ids],
        ).fetchall()
    assert len(serving) >= 2 and len(current) > len(serving)
    got = (
        lineage.select(
            "as_of_date",
            "smo_id",
            "feed",
            "delivery_id",
            "file_name",
            "sha256",
            "received_at",
            "status",
        )
        .sort(pl.all())
        .rows()
    )
    assert got == expected
    assert {r[0] for r in got} == {w for w in weeks if first <= w <= last}
    assert {(s, f, d) for w, s, f, d, *_ in got if w == last} == current
    assert sorted(gates.rows()) == sorted(expected_gates)
    assert set(gates["delivery_id"]) == set(ids) and gates["gate"].unique().to_list() == [
        "delivery"
    ]
    meta = json.loads((out / "manifest.json").read_text())
    assert any("all" in n and "match ops.deliveries" in n for n in meta["notes"])


def test_only_the_study_and_its_weeks_are_packed(env: Path, tmp_path: Path):
    week = _weeks(env)[-1]
    iso = f"{week.isocalendar().year}-W{week.isocalendar().week:02d}"
    out = tmp_path / "pack"
    assert main(["evidence", "--study", STUDY, "--from", iso, "--to", iso, "--out", str(out)]) == 0
    for name in ("site_flags", "flag_status", "study_qtls", "lineage"):
        frame = pl.read_parquet(out / f"tables/{name}.parquet")
        assert frame["as_of_date"].unique().to_list() == [week], name
        assert set(frame["study_id"].drop_nulls()) <= {STUDY}, name
    flags = pl.read_parquet(out / "tables/site_flags.parquet")
    kris = pl.read_parquet(out / "tables/kri_definitions.parquet")
    versions = set(flags.select("kri_id", "kri_version").unique().rows())
    assert set(kris.select("kri_id", "kri_version").rows()) == versions
    assert kris["method"].null_count() == 0 and kris.height == len(versions)


def test_a_report_not_kept_is_rendered_from_the_kept_bi_file(
    refreshed_portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    publish = tmp_path / "publish"
    shutil.copytree(refreshed_portfolio / "publish", publish, symlinks=True)
    for report in (publish / "reports").glob("*.html"):
        report.unlink()
    monkeypatch.setenv("SMO_PUBLISH_DIR", str(publish))
    monkeypatch.setenv("SMO_WAREHOUSE_PATH", str(refreshed_portfolio / "warehouse.duckdb"))
    week = _weeks(refreshed_portfolio)[-1]
    out = tmp_path / "pack"
    assert main(["evidence", "--study", STUDY, "--from", str(week), "--out", str(out)]) == 0
    index = (out / "index.html").read_text()
    assert "rendered now from the kept BI file" in index
    with duckdb.connect(str(publish / "oversight.duckdb"), read_only=True) as con:
        (publish_id,) = con.execute("select publish_id from meta").fetchone()
    report = out / f"reports/oversight-report-{publish_id}.html"
    assert f"as of {week}" in report.read_text()
    _assert_relative_links_resolve(report)


def _assert_relative_links_resolve(report: Path) -> None:
    """The report's CSV links (relative) point at files of the pack."""
    links = re.findall(r'href="([^"#:]+\.csv)"', report.read_text())
    assert links, "the report links to its CSV tables"
    for link in links:
        assert (report.parent / link).is_file(), link


def test_each_week_gets_the_report_of_its_newest_kept_publish(
    refreshed_portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Two kept publishes of the first week (history/ and their reports): the newer one's report
    is the week's; a week with no kept publish has none."""
    publish = tmp_path / "publish"
    shutil.copytree(refreshed_portfolio / "publish", publish, symlinks=True)
    weeks = _weeks(refreshed_portfolio)
    for publish_id, text in (
        ("20200101T000000000000Z", "older"),
        ("20200102T000000000000Z", "newer"),
    ):
        kept = publish / "history" / f"oversight-{publish_id}.duckdb"
        shutil.copyfile(refreshed_portfolio / "publish/oversight.duckdb", kept)
        with duckdb.connect(str(kept)) as con:
            con.execute("update meta set publish_id = ?, as_of_date = ?", [publish_id, weeks[0]])
        (publish / "reports" / f"oversight-report-{publish_id}.html").write_text(text)
        tables = publish / "reports" / f"oversight-report-{publish_id}-csv"
        tables.mkdir()
        (tables / "scorecard.csv").write_text(text)
    monkeypatch.setenv("SMO_PUBLISH_DIR", str(publish))
    monkeypatch.setenv("SMO_WAREHOUSE_PATH", str(refreshed_portfolio / "warehouse.duckdb"))
    out = tmp_path / "pack"
    assert main(["evidence", "--study", STUDY, "--out", str(out)]) == 0
    newer = out / "reports/oversight-report-20200102T000000000000Z.html"
    assert newer.read_text() == "newer"
    assert (out / "reports/oversight-report-20200102T000000000000Z-csv/scorecard.csv").is_file()
    assert not (out / "reports/oversight-report-20200101T000000000000Z.html").exists()
    packed = sorted(p.name for p in (out / "reports").glob("*.html"))
    assert len(packed) == 2, packed  # the first week's and the current week's; none in between
    current = next((publish / "reports").glob("oversight-report-2026*.html"))
    assert (out / "reports" / current.name).read_bytes() == current.read_bytes()
    _assert_relative_links_resolve(out / "reports" / current.name)
    assert "no report kept" in (out / "index.html").read_text()


def test_actions_are_packed_when_the_publish_has_them(
    refreshed_portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    publish = tmp_path / "publish"
    shutil.copytree(refreshed_portfolio / "publish", publish, symlinks=True)
    bi_file = publish / "oversight.duckdb"  # a copy: the shared fixture stays as published
    weeks = _weeks(refreshed_portfolio)
    old = weeks[0] - dt.timedelta(days=60)
    with duckdb.connect(str(bi_file)) as con:
        con.execute(
            f"create or replace table {ACTIONS_MART} as select * from (values"
            " ('A1', ?, ?::date, 'DONE', ?::date),"  # closed in the range: in
            " ('A2', 'SYN-002', ?::date, 'OPEN', null),"  # another study: out
            " ('A3', ?, ?::date, 'OPEN', null),"  # still open: in
            " ('A4', ?, ?::date, 'DONE', ?::date))"  # closed before the range: out
            " as t(action_id, study_id, opened_date, status, closed_date)",
            [STUDY, old, weeks[-1], old, STUDY, old, STUDY, old, old],
        )
    monkeypatch.setenv("SMO_PUBLISH_DIR", str(publish))
    monkeypatch.setenv("SMO_WAREHOUSE_PATH", str(refreshed_portfolio / "warehouse.duckdb"))
    out = tmp_path / "pack"
    assert main(["evidence", "--study", STUDY, "--out", str(out)]) == 0
    actions = pl.read_parquet(out / "tables/actions.parquet")
    assert actions["action_id"].to_list() == ["A1", "A3"]
    assert "no actions feed published" not in (out / "index.html").read_text()


def test_lineage_differing_from_the_ledger_is_said(
    refreshed_portfolio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A ledger whose hash no longer matches the published lineage is listed, not hidden."""
    shutil.copyfile(
        refreshed_portfolio / "warehouse.snapshot.duckdb", tmp_path / "warehouse.snapshot.duckdb"
    )
    with duckdb.connect(str(tmp_path / "warehouse.snapshot.duckdb")) as con:
        (changed,) = con.execute(
            "update ops.deliveries set sha256 = repeat('0', 64) where delivery_id = ("
            " select min(delivery_id) from marts.deliveries_used where study_id = ?)"
            " returning delivery_id",
            [STUDY],
        ).fetchone()
    monkeypatch.setenv("SMO_PUBLISH_DIR", str(refreshed_portfolio / "publish"))
    monkeypatch.setenv("SMO_WAREHOUSE_PATH", str(tmp_path / "warehouse.duckdb"))
    out = tmp_path / "pack"
    assert main(["evidence", "--study", STUDY, "--out", str(out)]) == 0
    notes = json.loads((out / "manifest.json").read_text())["notes"]
    assert f"Lineage check: DIFFERS: deliveries {changed} of the published" in " ".join(notes)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--study", "NO-SUCH-STUDY"], "unknown study 'NO-SUCH-STUDY'"),
        (["--study", STUDY, "--from", "2026-11-10", "--to", "2026-11-03"], "empty week range"),
        (["--study", STUDY, "--from", "2030-W01"], "no as-of week of SYN-001"),
    ],
)
def test_bad_requests_exit_2_with_one_line(env: Path, tmp_path: Path, capsys, args, message):
    out = tmp_path / "pack"
    assert main(["evidence", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "pack.zip").exists()
    assert not list(tmp_path.glob(".pack*"))


def test_nothing_published_or_out_not_empty_exit_2(
    env: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    assert main(["evidence", "--study", STUDY, "--out", str(tmp_path / "used")]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    monkeypatch.setenv("SMO_PUBLISH_DIR", str(tmp_path / "nothing"))
    assert main(["evidence", "--study", STUDY, "--out", str(tmp_path / "pack")]) == 2
    assert "nothing published at" in capsys.readouterr().err
    assert main(["evidence", "--study", STUDY, "--from", "2026-13-01", "--out", "x"]) == 2
    assert "expected YYYY-MM-DD or YYYY-Www" in capsys.readouterr().err


def test_parse_week():
    assert parse_week("2026-W47") == dt.date(2026, 11, 16)
    assert parse_week("2026-W47", end=True) == dt.date(2026, 11, 22)
    assert parse_week("2026-11-18") == dt.date(2026, 11, 18)
    with pytest.raises(ValueError, match="YYYY-Www"):
        parse_week("last week")
