"""Issue 18: NaN and infinity are never published (spec 3.1).

Every published mart of a real refresh holds none; one planted in a mart's warehouse table
fails that mart's publish gate, naming column and key, and the previous publish stays."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb

from expectations.publish_gate import check_finite, floating_columns, non_finite_sql
from orchestration.defs import publish as publish_defs
from orchestration.lib.warehouse import DuckDBWarehouse


def non_finite_cells(published: Path) -> tuple[int, list[tuple]]:
    """Every table, every week, every floating-point column of a published file: how many
    columns were checked and the NaN/infinity cells found."""
    with duckdb.connect(str(published), read_only=True) as con:
        tables = [t for (t,) in con.execute("select table_name from duckdb_tables()").fetchall()]
        assert len(tables) >= 19  # the marts and meta
        checked, found = 0, []
        for table in tables:
            columns = floating_columns(con.execute(f"describe {table}").fetchall())
            sql = non_finite_sql(table, columns, ())
            if sql:
                checked += len(columns)
                found += [(table, *row) for row in con.execute(sql).fetchall()]
    return checked, found


def test_no_published_mart_holds_nan_or_infinity(refreshed_portfolio: Path):
    checked, found = non_finite_cells(refreshed_portfolio / "publish" / "oversight.duckdb")
    assert checked > 50
    assert found == []


def _gate_and_publish() -> dg.JobDefinition:
    """The publish gate checks and the BI publish, without rebuilding the marts (dbt would
    overwrite what a test planted)."""
    defs = dg.Definitions(
        assets=[publish_defs.bi_oversight],
        asset_checks=[publish_defs.publish_gate],
        resources={"warehouse": DuckDBWarehouse()},
        jobs=[
            dg.define_asset_job(
                "gate_and_publish",
                selection=dg.AssetSelection.keys(publish_defs.PUBLISHED_KEY)
                | dg.AssetSelection.checks(publish_defs.publish_gate),
            )
        ],
    )
    return defs.resolve_job_def("gate_and_publish")


def test_nan_planted_in_a_mart_fails_its_gate_and_the_previous_publish_stays(
    refreshed_env: Path, dagster_instance
):
    warehouse = refreshed_env / "warehouse.duckdb"
    published = refreshed_env / "publish" / "oversight.duckdb"
    before = published.read_bytes()
    with duckdb.connect(str(warehouse)) as con:
        (site,) = con.execute(
            "select site_id from marts.site_payments where as_of_date = "
            "(select max(as_of_date) from marts.site_payments) order by site_id limit 1"
        ).fetchone()
        con.execute(
            "update marts.site_payments set cost_per_randomized = 'inf'::double, "
            "holdback_balance = 'nan'::double where site_id = ?",
            [site],
        )
    result = _gate_and_publish().execute_in_process(instance=dagster_instance, raise_on_error=False)
    evaluations = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "publish_gate"
    ]
    failed = {e.asset_key.path[-1]: e for e in evaluations if not e.passed}
    assert set(failed) == {"site_payments"}, sorted(failed)
    description = failed["site_payments"].description
    for column in ("cost_per_randomized", "holdback_balance"):
        assert f"expect_column_values_to_be_finite on {column}" in description
    assert f"site_id={site}" in description
    assert failed["site_payments"].metadata["outcome"].value == "data_failed"
    assert published.read_bytes() == before
    materialized = {
        m.asset_key for m in result.asset_materializations_for_node(
            publish_defs.bi_oversight.op.name)
    }  # fmt: skip
    assert publish_defs.PUBLISHED_KEY not in materialized
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert len(check_finite(con, "marts.site_payments", ("site_id",))) == 2


def test_the_preflight_blames_nan_on_the_smo_whose_delivery_brought_it(refreshed_env: Path):
    """The same rule in SQL before the gate: a NaN in one SMO's rows of the latest week is
    blamed on that SMO's current deliveries of the mart's feeds, naming the key. A NaN in a
    column with a range (a share in 0..1) is the finite rule's only, as in the gate: not also a
    range violation (NaN sorts above every number in DuckDB)."""
    from orchestration.lib.dbt import load_manifest
    from orchestration.lib.isolation import publish_preflight

    warehouse = refreshed_env / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        smo, site = con.execute(
            "select smo_id, site_id from marts.site_payments where as_of_date = "
            "(select max(as_of_date) from marts.site_payments) order by all limit 1"
        ).fetchone()
        con.execute(
            "update marts.site_payments set cost_per_randomized = 'nan'::double, "
            "paid_within_terms_share = 'nan'::double "
            "where site_id = ? and as_of_date = (select max(as_of_date) from marts.site_payments)",
            [site],
        )
        outcome = publish_preflight(con, load_manifest(), None, None)
        owners = {d: (o, f) for d, o, f in con.execute(
            "select delivery_id, smo_id, feed from ops.deliveries").fetchall()}  # fmt: skip
    blamed = {
        delivery: checks
        for delivery, checks in outcome.culprits.items()
        if any("publish finite" in c.check_name for c in checks)
    }
    assert {owners[d][0] for d in blamed} == {smo}
    assert "payments" in {owners[d][1] for d in blamed}
    finite = {c.check_name.rsplit(".", 1)[-1]: c for c in next(iter(blamed.values()))
              if "publish finite" in c.check_name}  # fmt: skip
    assert set(finite) == {"cost_per_randomized", "paid_within_terms_share"}
    check = finite["cost_per_randomized"]
    assert f"site_id={site}" in check.example and "nan" in check.example
    ranges = [c.check_name for checks in outcome.culprits.values() for c in checks
              if "publish range" in c.check_name]  # fmt: skip
    assert ranges == [], f"NaN reported as out of range too: {ranges}"
