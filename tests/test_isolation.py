"""One SMO never blocks another: a delivery that passes the gate but fails a blocking warehouse
check is pulled after the fact, and every other SMO's new data is published."""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration.demo import refresh_job

pytestmark = pytest.mark.integration

NEW_WEEK = "20261123"


def _newest(folder: Path, pattern: str) -> Path:
    return max(folder.glob(pattern), key=lambda p: p.name)


def _randomized_before_activation(archived: Path, target: Path, warehouse: Path) -> str:
    """The SMO's latest subjects file, re-dated, with one subject randomized three days before
    its site was activated: every value is valid on its own, the file passes the gate, but the
    site's time to first patient becomes negative, which a blocking warehouse test refuses."""
    text = archived.read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    row = next(r for r in body if r[col["Randomization Date"]])
    site, subject = row[col["Site #"]], row[col["Subject ID"]]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (activated,) = con.execute(
            "select activation_date from staging.stg_smo__sites where site_id = ?", [site]
        ).fetchone()
    fmt = "%m/%d/%Y"
    row[col["ICF Signed"]] = (activated - dt.timedelta(days=10)).strftime(fmt)
    row[col["Screening Date"]] = (activated - dt.timedelta(days=10)).strftime(fmt)
    row[col["Randomization Date"]] = (activated - dt.timedelta(days=3)).strftime(fmt)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([header, *body])
    target.write_text(out.getvalue(), encoding="utf-8-sig")
    return subject


def test_a_delivery_failing_a_warehouse_check_is_pulled_and_the_others_publish(
    refreshed_env: Path, dagster_instance
):
    data = refreshed_env / "data"
    warehouse = refreshed_env / "warehouse.duckdb"
    americas_archive = data / "archive" / "SMO-AMERICAS"
    latest = _newest(americas_archive, "*AMR_SYN-001_Subjects_*.csv")
    bad_name = f"AMR_SYN-001_Subjects_{NEW_WEEK}.csv"
    inbox = data / "inbox" / "SMO-AMERICAS"
    inbox.mkdir(parents=True, exist_ok=True)
    _randomized_before_activation(latest, inbox / bad_name, warehouse)
    # Another SMO's new week, valid: it must be published although SMO-AMERICAS failed.
    iberia_latest = _newest(data / "archive" / "SMO-IBERIA", "*IBERIA_pacientes_*")
    good_name = iberia_latest.name.split("__", 1)[1].rsplit("_", 1)[0] + f"_{NEW_WEEK}.csv"
    (data / "inbox" / "SMO-IBERIA").mkdir(parents=True, exist_ok=True)
    shutil.copy(iberia_latest, data / "inbox" / "SMO-IBERIA" / good_name)

    # ...and a valid staffing correction (one FTE changed): SMO-wide rows (study "*") must flow
    # through retroactive_changes without breaking it.
    staffing = _newest(data / "archive" / "SMO-IBERIA", "*IBERIA_personal_*")
    corrected_name = staffing.name.split("__", 1)[1].rsplit("_", 1)[0] + f"_{NEW_WEEK}.csv"
    lines = staffing.read_bytes().decode("cp1252").split("\r\n")
    first = lines[1].split(";")
    old_fte = float(first[-1].replace(",", "."))
    new_fte = 0.8 if old_fte != 0.8 else 0.7
    first[-1] = f"{new_fte:.2f}".replace(".", ",")
    lines[1] = ";".join(first)
    (data / "inbox" / "SMO-IBERIA" / corrected_name).write_bytes(
        "\r\n".join(lines).encode("cp1252")
    )

    result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)
    assert result.success

    with duckdb.connect(str(warehouse), read_only=True) as con:
        ledger = dict(
            con.execute(
                "select file_name, status from ops.deliveries where file_name in (?, ?, ?)",
                [bad_name, good_name, corrected_name],
            ).fetchall()
        )
        (bad_id, report) = con.execute(
            "select delivery_id, report_path from ops.deliveries where file_name = ?", [bad_name]
        ).fetchone()
        current = con.execute(
            "select d.file_name from ops.current_deliveries c join ops.deliveries d "
            "using (delivery_id) where c.smo_id = 'SMO-AMERICAS' and c.feed = 'subjects' "
            "and c.study_id = 'SYN-001'"
        ).fetchone()[0]
        raw_rows = con.execute(
            "select count(*) from raw.subjects where _delivery_id = ?", [bad_id]
        ).fetchone()[0]
        evidence = con.execute(
            "select json_extract_string(details, '$.check') from ops.gate_results "
            "where gate = 'warehouse' and check_name = 'warehouse.check_failed' "
            "and delivery_id = ?",
            [bad_id],
        ).fetchall()
    assert ledger == {bad_name: "REJECTED", good_name: "ACCEPTED", corrected_name: "ACCEPTED"}
    assert current == latest.name.split("__", 1)[1], "the previous snapshot is current again"
    assert raw_rows == 0
    assert evidence and all("non_negative" in check for (check,) in evidence)
    quarantined = data / "quarantine" / "SMO-AMERICAS"
    assert any(p.name.endswith(bad_name) for p in quarantined.iterdir())
    assert not any(p.name.endswith(bad_name) for p in americas_archive.iterdir())
    markdown = Path(report).read_text()
    assert "pulled" in markdown and "warehouse.check_failed" in markdown

    publish = refreshed_env / "publish"
    with duckdb.connect(str(publish / "oversight.duckdb"), read_only=True) as con:
        (as_of,) = con.execute("select max(as_of_date) from deliveries_used").fetchone()
        used = {r[0] for r in con.execute("select file_name from deliveries_used").fetchall()}
        log = con.execute(
            "select status, rejection_reasons from delivery_log where file_name = ?", [bad_name]
        ).fetchone()
        fte_changes = con.execute(
            "select study_id, old_value, new_value from retroactive_changes "
            "where feed = 'staffing' and field = 'fte' and delivery_date = ?",
            [dt.date(2026, 11, 23)],
        ).fetchall()
    assert fte_changes == [(None, str(old_fte), str(new_fte))]
    assert as_of == dt.date(2026, 11, 23)
    assert good_name in used and bad_name not in used
    assert log[0] == "REJECTED" and "warehouse.check_failed" in log[1]
    report_html = (publish / "oversight-report.html").read_text()
    assert bad_name in report_html

    pulled_logs = [
        e.message
        for e in dagster_instance.all_logs(result.run_id)
        if "PULLED delivery" in (e.message or "")
    ]
    assert len(pulled_logs) == 1 and bad_name in pulled_logs[0]


def test_a_delivery_that_would_fail_the_publish_gate_is_pulled_before_it(
    refreshed_env: Path, dagster_instance
):
    """A roster that silently drops a site (a dropped site without subjects, so no warehouse
    test notices): the publish gate's "nothing published disappears" rule would block every
    SMO. The preflight finds it after the build, pulls the roster, rebuilds, and publishes."""
    data = refreshed_env / "data"
    latest = _newest(data / "archive" / "SMO-AMERICAS", "*AMR_SYN-001_SiteList_*.csv")
    rows = list(csv.reader(io.StringIO(latest.read_text(encoding="utf-8-sig"))))
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb"), read_only=True) as con:
        quiet = {
            site
            for (site,) in con.execute(
                "select site_id from staging.stg_smo__sites s where study_id = 'SYN-001' "
                "and smo_id = 'SMO-AMERICAS' and not exists (select 1 from "
                "staging.stg_smo__subjects u where u.site_id = s.site_id)"
            ).fetchall()
        }
    assert quiet, "the portfolio has a site without subjects"
    dropped = sorted(quiet)[0]
    kept = [rows[0]] + [r for r in rows[1:] if r[0] != dropped]
    assert len(kept) == len(rows) - 1
    name = f"AMR_SYN-001_SiteList_{NEW_WEEK}.csv"
    inbox = data / "inbox" / "SMO-AMERICAS"
    inbox.mkdir(parents=True, exist_ok=True)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(kept)
    (inbox / name).write_text(out.getvalue(), encoding="utf-8-sig")

    result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)
    assert result.success
    with duckdb.connect(str(refreshed_env / "warehouse.duckdb"), read_only=True) as con:
        (status,) = con.execute(
            "select status from ops.deliveries where file_name = ?", [name]
        ).fetchone()
        checks = {
            r[0]
            for r in con.execute(
                "select json_extract_string(details, '$.check') from ops.gate_results "
                "where gate = 'warehouse' and check_name = 'warehouse.check_failed'"
            ).fetchall()
        }
    assert status == "REJECTED"
    assert any("published entity disappeared" in c for c in checks), checks
    with duckdb.connect(str(refreshed_env / "publish" / "oversight.duckdb"), read_only=True) as con:
        sites = {r[0] for r in con.execute("select site_id from site_enrollment").fetchall()}
    assert dropped in sites
    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert evaluations["no_delivery_pulled"].passed is False
    assert evaluations["publish_gate"].passed
