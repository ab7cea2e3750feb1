"""Poisson-Gamma enrollment forecast per study; the method lives in forecasting/enrollment.py.

The `dbt.ref` calls stay in the model: dbt finds a Python model's dependencies by reading them
in its source, so they cannot move into a shared helper.
"""

from forecasting.enrollment import forecast_tables


def model(dbt, session):
    dbt.config(materialized="table")
    forecast, _fan = forecast_tables(
        dbt.ref("int_site_week__enrollment").df(),
        dbt.ref("stg_ctgov__studies").df(),
        draws=int(dbt.config.get("forecast_draws") or 2000),
        base_seed=int(dbt.config.get("forecast_seed") or 20261122),
    )
    return forecast
