"""The published file holds only what BI users may see: no free text typed about subjects (it
may carry health information) and no server paths; the warehouse keeps both for data engineers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from expectations.feeds import FREE_TEXT_COLUMNS
from expectations.publish_gate import ABSOLUTE_PATH
from orchestration.demo import refresh_job
from publishing.bi_database import current_parquet_set

pytestmark = pytest.mark.integration

NEW_WEEK = "20261123"
REASON = "Withdrew consent after positive HIV test"


def _rewrite(archived: Path, target: Path, change) -> None:
    """The SMO's latest file re-dated as next week's delivery, with `change(header, rows)`."""
    rows = list(csv.reader(io.StringIO(archived.read_text(encoding="utf-8-sig"))))
    change({name: i for i, name in enumerate(rows[0])}, rows[1:])
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    target.write_text(out.getvalue(), encoding="utf-8-sig")


def _new_reason(col: dict, rows: list) -> None:
    row = next(r for r in rows if r[col["Screen Fail Reason"]])
    row[col["Screen Fail Reason"]] = REASON


def _unreadable_date(col: dict, rows: list) -> None:
    rows[0][col["Screening Date"]] = "13/45/2026"


def test_the_publish_holds_no_free_text_and_no_server_path(refreshed_env: Path, dagster_instance):
    data, warehouse = refreshed_env / "data", refreshed_env / "warehouse.duckdb"
    archive, inbox = data / "archive" / "SMO-AMERICAS", data / "inbox" / "SMO-AMERICAS"
    inbox.mkdir(parents=True, exist_ok=True)
    for study, change in (("001", _new_reason), ("002", _unreadable_date)):
        latest = max(archive.glob(f"*AMR_SYN-{study}_Subjects_*.csv"), key=lambda p: p.name)
        _rewrite(latest, inbox / f"AMR_SYN-{study}_Subjects_{NEW_WEEK}.csv", change)

    result = dg.execute_job(dg.reconstructable(refresh_job), instance=dagster_instance)
    assert result.success

    # the warehouse keeps the detail
    with duckdb.connect(str(warehouse), read_only=True) as con:
        kept = con.execute(
            "select new_value from intermediate.int_history__changes "
            "where field = 'screen_fail_reason'"
        ).fetchall()
        (path,) = con.execute(
            "select report_path from marts.delivery_log where status = 'REJECTED' "
            "and file_name = ?",
            [f"AMR_SYN-002_Subjects_{NEW_WEEK}.csv"],
        ).fetchone()
    assert kept == [(REASON,)]
    assert ABSOLUTE_PATH.search(path)

    published = refreshed_env / "publish" / "oversight.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        columns = con.execute(
            "select table_name, column_name, data_type from duckdb_columns() "
            "where not internal and schema_name = 'main' order by all"
        ).fetchall()
        assert not {c for _, c, _ in columns} & (FREE_TEXT_COLUMNS | {"report_path"})
        # no published text holds the free text or an absolute path
        texts = [(t, c) for t, c, kind in columns if kind == "VARCHAR"]
        found = con.execute(
            " union all ".join(
                f'select \'{t}.{c}\', "{c}" from "{t}" where "{c}" like \'%HIV%\' '
                f'or regexp_matches("{c}", ?)'
                for t, c in texts
            ),
            [ABSOLUTE_PATH.pattern] * len(texts),
        ).fetchall()
        assert found == []
        change = con.execute(
            "select old_value, new_value, values_withheld from retroactive_changes "
            "where field = 'screen_fail_reason' and delivery_date = '2026-11-23'"
        ).fetchall()
        assert change == [(None, None, True)]
        (reasons,) = con.execute(
            "select rejection_reasons from delivery_log where file_name = ?",
            [f"AMR_SYN-002_Subjects_{NEW_WEEK}.csv"],
        ).fetchone()
    assert "screened_date" in reasons and "13/45/2026" in reasons  # a date is quoted
    parquet = current_parquet_set(refreshed_env / "publish") / "delivery_log.parquet"
    with duckdb.connect() as con:
        names = [r[0] for r in con.execute(f"describe select * from '{parquet}'").fetchall()]
    assert "report_path" not in names and "rejection_reasons" in names
