"""The delivery gate's plausibility context: what a file is judged against besides its own
contract (expectations.contracts.Plausibility).

Every value a warehouse test would refuse is refused here first, per file, so that one SMO's
delivery can never fail a blocking dbt test and stop every SMO's publish. The context comes
from the settings (date window), the SMO's current site roster (each study's first planned
activation) and the FX seed dbt converts payments with. The sponsor's oversight actions are
judged against what their targets may be (`action_targets`): every SMO's current rosters, the
KRI and QTL seeds and the delivery ledger.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from functools import cache

import duckdb
import polars as pl
import yaml

from core.settings import DBT_PROJECT_DIR, Settings, load_settings
from expectations.contracts import ActionTargets, Plausibility, roster_keys

FX_SEED = DBT_PROJECT_DIR / "seeds" / "fx_rates.csv"
KRI_SEED = DBT_PROJECT_DIR / "seeds" / "kri_definitions.csv"
QTL_SEED = DBT_PROJECT_DIR / "seeds" / "qtl_definitions.csv"
#: Site dates that say when a study started at the SMO, earliest first in the study's life.
STUDY_START_COLUMNS = ("planned_activation_date", "selected_date", "activation_date")


@cache
def _fx_first_rate() -> dict[str, dt.date]:
    """currency -> first `valid_from` in the FX seed (rates apply from then on, as-of join)."""
    first: dict[str, dt.date] = {}
    with FX_SEED.open(newline="") as handle:
        for row in csv.DictReader(handle):
            day = dt.date.fromisoformat(row["valid_from"])
            currency = row["currency"].strip().upper()
            first[currency] = min(day, first.get(currency, day))
    return first


@cache
def _reporting_currency() -> str:
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    return str(project.get("vars", {}).get("reporting_currency", "EUR")).upper()


@cache
def _seed_ids(seed, column: str, **where: str) -> frozenset[str]:
    with seed.open(newline="") as handle:
        return frozenset(
            row[column].strip()
            for row in csv.DictReader(handle)
            if all(row.get(k, "").strip() == v for k, v in where.items())
        )


def action_targets(con: duckdb.DuckDBPyConnection) -> ActionTargets:
    """What an oversight action may target at ingest: studies and (study, site) pairs on any
    SMO's current roster, SMOs with a current roster, site KRIs and QTLs of the seeds (a QTL
    applies to every study), and every delivery in the ledger."""
    from ingest.warehouse import current_rows_sql

    sites = con.execute(
        f"select distinct smo_id, study_id, site_id from ({current_rows_sql('sites')})"
    ).fetchall()
    deliveries = con.execute("select delivery_id from ops.deliveries").fetchall()
    return ActionTargets(
        studies=frozenset(r[1] for r in sites),
        sites=roster_keys([r[1] for r in sites], [r[2] for r in sites]),
        kris=_seed_ids(KRI_SEED, "kri_id", level="site"),
        qtls=_seed_ids(QTL_SEED, "qtl_id"),
        smos=frozenset(r[0] for r in sites),
        deliveries=frozenset(r[0] for r in deliveries),
    )


def plausibility(
    settings: Settings | None = None, study_starts: Mapping[str, dt.date] | None = None
) -> Plausibility:
    settings = settings or load_settings()
    return Plausibility(
        earliest=settings.date_window_earliest,
        margin_days=settings.date_window_margin_days,
        future_years=settings.date_window_future_years,
        study_starts=dict(study_starts or {}),
        fx_first_rate=_fx_first_rate(),
        reporting_currency=_reporting_currency(),
    )


def study_starts_of(frame: pl.DataFrame) -> dict[str, dt.date]:
    """study_id -> earliest start date among a sites frame's rows (studies without any date are
    left out: their window falls back to the absolute earliest date)."""
    present = [c for c in STUDY_START_COLUMNS if c in frame.columns]
    if frame.height == 0 or not present or "study_id" not in frame.columns:
        return {}
    starts = (
        frame.group_by("study_id")
        .agg(pl.min_horizontal(pl.col(c).min() for c in present).alias("start"))
        .drop_nulls("start")
    )
    return dict(zip(starts["study_id"].to_list(), starts["start"].to_list(), strict=True))


def roster_study_starts(con: duckdb.DuckDBPyConnection, smo_id: str) -> dict[str, dt.date]:
    """Each study's start on the SMO's current roster in the warehouse."""
    from ingest.warehouse import current_rows_sql

    starts = ", ".join(f"min({c})" for c in STUDY_START_COLUMNS)
    rows = con.execute(
        f"""
        select study_id, least({starts}) as start
        from ({current_rows_sql("sites")}) where smo_id = ?
        group by study_id having start is not null
        """,
        [smo_id],
    ).fetchall()
    return dict(rows)


def with_roster(context: Plausibility, sites: pl.DataFrame) -> Plausibility:
    """The context after a sites file of the same batch was accepted: its studies' starts
    replace the warehouse's."""
    return replace(context, study_starts={**context.study_starts, **study_starts_of(sites)})
