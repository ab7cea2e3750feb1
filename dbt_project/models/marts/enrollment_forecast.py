"""Poisson-Gamma enrollment forecast per study; the method lives in forecasting/enrollment.py."""

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
