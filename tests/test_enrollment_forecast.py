"""The Poisson-Gamma forecast (forecasting/enrollment.py, behind two dbt Python models) on
small hand-checked inputs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from forecasting import enrollment as forecast

AS_OF = dt.date(2026, 6, 29)


def _sites(rows: list[dict]) -> pd.DataFrame:
    base = {"status": "ENROLLING", "closed_date": None, "planned_activation_date": None}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_gamma_prior_by_moments_removes_poisson_noise():
    # rates 0, 2, 4 per month over 5 months each: mean 2, sample variance 4; Poisson noise
    # mean x mean(1/tau) = 2 x 0.2 = 0.4 -> between-site variance 3.6.
    alpha, beta = forecast.fit_gamma(np.array([0, 10, 20]), np.array([5.0, 5.0, 5.0]))
    assert alpha == pytest.approx(4 / 3.6)
    assert beta == pytest.approx(2 / 3.6)


def test_homogeneous_sites_get_a_tight_prior_not_an_infinite_one():
    # rates 1, 2, 3 over 2 months: variance 1 equals the Poisson noise 2 x 0.5, so the
    # between-site variance floors at mean^2 / 100 = 0.04: alpha 100, beta 50.
    alpha, beta = forecast.fit_gamma(np.array([2, 4, 6]), np.array([2.0, 2.0, 2.0]))
    assert (alpha, beta) == pytest.approx((100.0, 50.0))


def test_no_exposure_means_no_forecast():
    assert forecast.fit_gamma(np.array([0, 0]), np.array([0.5, 0.2])) is None
    result, fan = forecast.forecast_study(
        _sites([{"activation_date": None, "subjects_randomized": 0, "site_months_active": 0.0}]),
        as_of=AS_OF,
        target=10,
        planned_end=None,
        draws=100,
        seed=1,
    )
    assert result["target_date_p50"] is None and result["gamma_alpha"] is None
    assert fan == []


def _two_sites(**extra) -> pd.DataFrame:
    return _sites(
        [
            {"activation_date": dt.date(2025, 6, 29), "subjects_randomized": 24,
             "site_months_active": 12.0},
            {"activation_date": dt.date(2025, 6, 29), "subjects_randomized": 12,
             "site_months_active": 12.0},
        ]
        + ([extra] if extra else [])
    )  # fmt: skip


def test_forecast_is_reproducible_and_ordered():
    kwargs = dict(as_of=AS_OF, target=100, planned_end=dt.date(2027, 6, 29), draws=2000, seed=7)
    first, first_fan = forecast.forecast_study(_two_sites(), **kwargs)
    again, again_fan = forecast.forecast_study(_two_sites(), **kwargs)
    assert (first, first_fan) == (again, again_fan)
    assert first["target_date_p10"] <= first["target_date_p50"] <= first["target_date_p90"]
    assert (
        first["randomized_by_end_p10"]
        <= first["randomized_by_end_p50"]
        <= first["randomized_by_end_p90"]
    )
    # Two sites at about 3 randomized per month together: 64 more take about 21 months, and a
    # year from now they are near 36 + 36 = 72, short of 100.
    p50_months = (first["target_date_p50"] - AS_OF).days / 30.4375
    assert 17 < p50_months < 26
    assert 60 < first["randomized_by_end_p50"] < 85
    assert first["probability_target_by_end"] < 0.1


def test_a_pending_site_starts_at_its_planned_activation():
    planned = AS_OF + dt.timedelta(days=200)
    with_pending = _two_sites(
        activation_date=None,
        status="SELECTED",
        subjects_randomized=0,
        site_months_active=0.0,
        planned_activation_date=planned,
    )
    kwargs = dict(as_of=AS_OF, target=100, planned_end=dt.date(2027, 6, 29), draws=2000, seed=7)
    base, _ = forecast.forecast_study(_two_sites(), **kwargs)
    more, _ = forecast.forecast_study(with_pending, **kwargs)
    assert more["sites_pending_activation"] == 1
    assert more["target_date_p50"] < base["target_date_p50"]
    # before its activation the pending site adds nothing: same draws for the first 200 days
    cumulative = forecast.simulate(
        alpha=2.0, beta=1.0, randomized=np.array([0.0]), months=np.array([0.0]),
        active=np.array([False]), start_day=np.array([200]), draws=50, seed=3,
    )  # fmt: skip
    assert cumulative[:, :200].sum() == 0 and cumulative[:, -1].sum() > 0


def test_target_already_reached_is_reached_today():
    result, _ = forecast.forecast_study(
        _two_sites(), as_of=AS_OF, target=30, planned_end=None, draws=100, seed=1
    )
    assert result["target_date_p10"] == result["target_date_p90"] == AS_OF


def test_the_fan_starts_at_today_widens_and_crosses_the_target_at_the_median_date():
    kwargs = dict(as_of=AS_OF, target=100, planned_end=dt.date(2027, 6, 29), draws=2000, seed=7)
    result, fan = forecast.forecast_study(_two_sites(), **kwargs)
    assert fan[0]["forecast_date"] == AS_OF
    assert fan[0]["randomized_p10"] == fan[0]["randomized_p90"] == 36
    for point in fan:
        assert point["randomized_p10"] <= point["randomized_p50"] <= point["randomized_p90"]
    for before, after in zip(fan, fan[1:], strict=False):
        assert after["forecast_date"] - before["forecast_date"] == dt.timedelta(days=7)
        assert after["randomized_p50"] >= before["randomized_p50"]
    assert fan[-1]["randomized_p90"] - fan[-1]["randomized_p10"] > 10  # the fan widens
    # P(reached by d) = P(cumulative on d >= target): the median path crosses the target within
    # a week of the median target date, and the fan runs past it.
    crossed = next(p["forecast_date"] for p in fan if p["randomized_p50"] >= 100)
    assert abs((crossed - result["target_date_p50"]).days) <= 7


def test_the_forecast_does_not_depend_on_the_order_of_its_input_rows():
    """The warehouse returns rows in no fixed order: the same sites in another order must give
    the same forecast, draw for draw (a site's rate draw belongs to the site, not a position)."""
    rng = np.random.default_rng(5)
    sites = _sites(
        [
            {"as_of_date": AS_OF, "smo_id": f"SMO-{i % 2}", "study_id": f"SYN-00{i % 3}",
             "site_id": f"S{i:02d}", "nct_id": None, "target_enrollment": 20,
             "activation_date": dt.date(2025, 1, 1) + dt.timedelta(days=int(rng.integers(300))),
             "subjects_randomized": int(rng.integers(0, 15)),
             "site_months_active": float(rng.uniform(3, 18))}
            for i in range(12)
        ]
    )  # fmt: skip
    studies = pd.DataFrame(
        {"nct_id": [], "role": [], "enrollment_count": [], "primary_completion_date": []}
    )
    kwargs = dict(draws=500, base_seed=11)
    forecast._memo.clear()
    first, first_fan = forecast.forecast_tables(sites, studies, **kwargs)
    forecast._memo.clear()
    shuffled = sites.sample(frac=1, random_state=3).reset_index(drop=True)
    again, again_fan = forecast.forecast_tables(shuffled, studies, **kwargs)
    assert len(first) == 3
    assert first.equals(again) and first_fan.equals(again_fan)


def test_the_fan_is_each_weeks_percentiles_of_the_draws():
    """The fan is computed for all weeks at once: on a fixed seed it equals the week-by-week
    definition (percentiles of the draws' cumulative count at the end of each week, rounded)."""
    cumulative = forecast.simulate(
        alpha=2.0, beta=1.5, randomized=np.array([20.0, 5.0, 0.0]),
        months=np.array([10.0, 6.0, 0.0]), active=np.array([True, True, False]),
        start_day=np.array([0, 0, 90]), draws=500, seed=11,
    )  # fmt: skip
    fan = forecast._fan(cumulative, 25, AS_OF, dt.date(2028, 1, 3), None)
    assert len(fan) > forecast.PATH_MIN_WEEKS
    for week, point in enumerate(fan):
        drawn = 25 + (cumulative[:, week * 7 - 1] if week else np.zeros(len(cumulative)))
        assert point == {
            "forecast_date": AS_OF + dt.timedelta(days=week * 7),
            "weeks_ahead": week,
            **{f"randomized_p{q}": int(round(np.percentile(drawn, q))) for q in (10, 50, 90)},
        }


def test_the_forecast_reads_only_the_latest_week_of_its_input():
    """Earlier as-of weeks in the input (the whole site-week history) change nothing."""
    latest = _two_sites().assign(
        as_of_date=AS_OF, study_id="S1", smo_id="SMO-A", site_id=["A1", "A2"], nct_id=None,
        target_enrollment=50,
    )  # fmt: skip
    earlier = latest.assign(as_of_date=AS_OF - dt.timedelta(days=7), subjects_randomized=[1, 2])
    studies = pd.DataFrame(
        {"nct_id": [], "role": [], "enrollment_count": [], "primary_completion_date": []}
    )
    forecast._memo.clear()
    alone = forecast.forecast_tables(latest, studies, draws=300, base_seed=5)
    forecast._memo.clear()
    with_history = forecast.forecast_tables(
        pd.concat([earlier, latest]), studies, draws=300, base_seed=5
    )
    assert alone[0].num_rows == 1 and alone[1].num_rows > 0
    assert alone[0].equals(with_history[0]) and alone[1].equals(with_history[1])
