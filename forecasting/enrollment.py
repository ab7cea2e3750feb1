"""Poisson-Gamma enrollment forecast (Anisimov & Fedorov 2007; spec 3).

Site rates lambda_i ~ Gamma(alpha, beta) are fitted across the study's activated sites by the
method of moments (the Poisson noise n_i/tau_i adds mean(r)*mean(1/tau) to the variance of the
observed rates, so it is taken out). Each site's posterior is Gamma(alpha + n_i, beta + tau_i);
sites not yet active enter at their planned activation date with the prior. Future
randomizations are Poisson with the drawn rates, simulated day by day. Draws are seeded per study
(forecast_seed + CRC-32 of the study id) and made for the sites in key order (SMO, site), so a
forecast depends on the stored deliveries only, never on the physical order of its input rows.

Plain numpy/pandas, shared by the dbt Python models `enrollment_forecast` (one row per study)
and `enrollment_forecast_path` (the weekly P10/P50/P90 fan), and imported by the tests.
"""

import datetime as dt
import threading
import zlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa

DAYS_PER_MONTH = 30.4375
HORIZON_DAYS = 3650
CHUNK_DAYS = 365

#: The output table's columns and types, fixed so an empty warehouse builds the same table.
SCHEMA = pa.schema(
    [
        ("as_of_date", pa.date32()),
        ("study_id", pa.string()),
        ("nct_id", pa.string()),
        ("target_enrollment", pa.int64()),
        ("target_source", pa.string()),
        ("planned_start_date", pa.date32()),
        ("planned_end_date", pa.date32()),
        ("draws", pa.int64()),
        ("seed", pa.int64()),
        ("randomized_to_date", pa.int64()),
        ("sites_active", pa.int64()),
        ("sites_pending_activation", pa.int64()),
        ("gamma_alpha", pa.float64()),
        ("gamma_beta", pa.float64()),
        ("target_date_p10", pa.date32()),
        ("target_date_p50", pa.date32()),
        ("target_date_p90", pa.date32()),
        ("randomized_by_end_p10", pa.int64()),
        ("randomized_by_end_p50", pa.int64()),
        ("randomized_by_end_p90", pa.int64()),
        ("probability_target_by_end", pa.float64()),
    ]
)

#: The fan: cumulative randomized quantiles week by week from the as-of date.
PATH_SCHEMA = pa.schema(
    [
        ("as_of_date", pa.date32()),
        ("study_id", pa.string()),
        ("forecast_date", pa.date32()),
        ("weeks_ahead", pa.int64()),
        ("randomized_p10", pa.int64()),
        ("randomized_p50", pa.int64()),
        ("randomized_p90", pa.int64()),
    ]
)
#: The fan runs at least this many weeks and at most to the horizon below, past the later of
#: the planned end and the median date the target is reached.
PATH_MIN_WEEKS = 12
PATH_MAX_WEEKS = 156


def fit_gamma(randomized: np.ndarray, months: np.ndarray) -> tuple[float, float] | None:
    """(alpha, beta) of the site-rate prior, per month; None without usable exposure."""
    use = months >= 1.0
    if not use.any():
        return None
    n, tau = randomized[use].astype(float), months[use].astype(float)
    rates = n / tau
    mean = rates.mean()
    if mean <= 0:
        return None
    noise = mean * (1.0 / tau).mean()
    variance = rates.var(ddof=1) - noise if len(rates) > 1 else 0.0
    # Homogeneous sites (variance explained by Poisson noise alone): a tight prior, not alpha = inf.
    variance = max(variance, mean * mean / 100.0)
    return mean * mean / variance, mean / variance


def simulate(
    *,
    alpha: float,
    beta: float,
    randomized: np.ndarray,
    months: np.ndarray,
    active: np.ndarray,
    start_day: np.ndarray,
    draws: int,
    seed: int,
    horizon_days: int = HORIZON_DAYS,
    enough: Callable[[np.ndarray, int], bool] | None = None,
) -> np.ndarray:
    """Cumulative future randomizations, shape (draws, days simulated): day d = end of day d+1.

    Simulated a year at a time up to `horizon_days`, stopping early once `enough(totals so far,
    days simulated)` says so: most studies reach their target in a year or two, and simulating
    ten years of days for every draw was the forecast's whole cost.
    """
    rng = np.random.default_rng(seed)
    shape = np.where(active, alpha + randomized, alpha)
    rate = np.where(active, beta + months, beta)
    lam = rng.gamma(shape, 1.0 / rate, size=(draws, len(shape)))  # per month
    parts, totals = [], np.zeros(draws, dtype=np.int64)
    for first in range(0, horizon_days, CHUNK_DAYS):
        days = np.arange(first, min(first + CHUNK_DAYS, horizon_days))
        # expected arrivals per day of each draw: sum of the rates of the sites open that day
        open_sites = (days[None, :] >= start_day[:, None]).astype(float)  # (sites, days)
        daily_mean = lam @ open_sites / DAYS_PER_MONTH  # (draws, days)
        part = totals[:, None] + np.cumsum(rng.poisson(daily_mean), axis=1)
        totals = part[:, -1]
        parts.append(part)
        if enough is not None and enough(totals, int(days[-1]) + 1):
            break
    return np.concatenate(parts, axis=1)


def forecast_study(
    sites: pd.DataFrame,
    *,
    as_of: dt.date,
    target: int,
    planned_end: dt.date | None,
    draws: int,
    seed: int,
) -> tuple[dict, list[dict]]:
    """P10/P50/P90 of the date the target is reached and of randomized by the planned end, and
    the weekly fan of cumulative randomized (empty when no rate can be fitted)."""
    activated = sites["activation_date"].notna()
    closed = sites["closed_date"].notna()
    pending = ~activated & ~sites["status"].isin(["DROPPED", "CLOSED"])
    randomized = sites["subjects_randomized"].to_numpy(dtype=float)
    months = sites["site_months_active"].to_numpy(dtype=float)
    current = int(randomized.sum())
    fit = fit_gamma(randomized[activated.to_numpy()], months[activated.to_numpy()])
    result = {
        "randomized_to_date": current,
        "sites_active": int((activated & ~closed).sum()),
        "sites_pending_activation": int(pending.sum()),
        "gamma_alpha": None,
        "gamma_beta": None,
        "target_date_p10": None,
        "target_date_p50": None,
        "target_date_p90": None,
        "randomized_by_end_p10": None,
        "randomized_by_end_p50": None,
        "randomized_by_end_p90": None,
        "probability_target_by_end": None,
    }
    if fit is None:
        return result, []
    alpha, beta = fit
    result["gamma_alpha"], result["gamma_beta"] = alpha, beta
    future = ((activated & ~closed) | pending).to_numpy()
    planned = pd.to_datetime(sites["planned_activation_date"]).dt.date
    start_day = np.array(
        [
            0 if act or pd.isna(p) else max(0, (p - as_of).days)
            for act, p in zip(activated, planned, strict=True)
        ]
    )
    remaining = target - current
    # simulate until every draw reached the target and the planned end and the fan's minimum
    # length are covered (or the ten-year horizon runs out)
    needed_days = max(PATH_MIN_WEEKS * 7 + 1, (planned_end - as_of).days if planned_end else 0)
    cumulative = simulate(
        alpha=alpha,
        beta=beta,
        randomized=randomized[future],
        months=months[future],
        active=activated.to_numpy()[future],
        start_day=start_day[future],
        draws=draws,
        seed=seed,
        enough=lambda totals, days: days >= needed_days and bool((totals >= remaining).all()),
    )
    if remaining <= 0:
        reached = np.zeros(draws)
    else:
        hit = cumulative >= remaining
        reached = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, np.inf)
    for pct in (10, 50, 90):
        day = np.percentile(reached, pct)
        result[f"target_date_p{pct}"] = (
            as_of + dt.timedelta(days=int(day)) if np.isfinite(day) else None
        )
    if planned_end is not None and planned_end > as_of:
        end_day = min((planned_end - as_of).days, cumulative.shape[1]) - 1
        by_end = current + cumulative[:, end_day]
        for pct in (10, 50, 90):
            result[f"randomized_by_end_p{pct}"] = int(np.percentile(by_end, pct))
        result["probability_target_by_end"] = float((by_end >= target).mean())
    return result, _fan(cumulative, current, as_of, planned_end, result["target_date_p50"])


def _fan(
    cumulative: np.ndarray,
    current: int,
    as_of: dt.date,
    planned_end: dt.date | None,
    target_p50: dt.date | None,
) -> list[dict]:
    """Weekly quantiles of cumulative randomized, from the as-of date (week 0) on."""
    ends = [d for d in (planned_end, target_p50) if d is not None and d > as_of]
    weeks = max([PATH_MIN_WEEKS, *(-(-(d - as_of).days // 7) for d in ends)])
    weeks = min(weeks, PATH_MAX_WEEKS, cumulative.shape[1] // 7)
    # every week's draws at once: one percentile call over the (draws, weeks) matrix instead of
    # three per week (the same values: percentiles are taken column by column)
    days = np.arange(weeks + 1) * 7
    drawn = current + np.concatenate(
        [np.zeros((len(cumulative), 1)), cumulative[:, days[1:] - 1]], axis=1
    )
    quantiles = np.rint(np.percentile(drawn, (10, 50, 90), axis=0)).astype(np.int64)
    return [
        {
            "forecast_date": as_of + dt.timedelta(days=int(day)),
            "weeks_ahead": week,
            "randomized_p10": int(quantiles[0, week]),
            "randomized_p50": int(quantiles[1, week]),
            "randomized_p90": int(quantiles[2, week]),
        }
        for week, day in enumerate(days)
    ]


def study_seed(base: int, study_id: str) -> int:
    return base + zlib.crc32(study_id.encode())


_memo: dict[tuple, tuple[pa.Table, pa.Table]] = {}
_memo_lock = threading.Lock()


def forecast_tables(
    sites: pd.DataFrame, studies: pd.DataFrame, *, draws: int, base_seed: int
) -> tuple[pa.Table, pa.Table]:
    """The study forecasts and their fans, from the site-week enrollment inputs and the
    registry's portfolio studies (target = registry enrollment, else the sum of site targets).

    dbt runs the two forecast models in one process, often at once on two threads: the second
    waits for the first and reuses its result (same inputs, same seed, same draws) instead of
    simulating everything again. Only the latest as-of week is forecast, so only its rows are
    hashed for that: the input holds every week of the history.
    """
    if not sites.empty:
        as_of = pd.Timestamp(sites["as_of_date"].max()).date()
        sites = sites[pd.to_datetime(sites["as_of_date"]).dt.date == as_of]
    key = (
        int(pd.util.hash_pandas_object(sites, index=False).sum()),
        int(pd.util.hash_pandas_object(studies.astype("string"), index=False).sum()),
        len(sites),
        len(studies),
        draws,
        base_seed,
    )
    with _memo_lock:
        if key not in _memo:
            _memo.clear()
            _memo[key] = _forecast_tables(sites, studies, draws=draws, base_seed=base_seed)
        return _memo[key]


def _forecast_tables(
    sites: pd.DataFrame, studies: pd.DataFrame, *, draws: int, base_seed: int
) -> tuple[pa.Table, pa.Table]:
    if sites.empty:
        return SCHEMA.empty_table(), PATH_SCHEMA.empty_table()
    as_of = pd.Timestamp(sites["as_of_date"].max()).date()  # the only week left in `sites`
    # The draws are made site by site: sites in key order, never in the order the warehouse
    # happens to return them, so the same deliveries always give the same forecast.
    sites = sites.sort_values(["study_id", "smo_id", "site_id"], kind="stable")
    registry = studies[studies["role"] == "portfolio"].set_index("nct_id")
    rows, fan_rows = [], []
    for study_id, group in sites.groupby("study_id", sort=True):
        nct_ids = group["nct_id"].dropna().unique()
        record = registry.loc[nct_ids[0]] if len(nct_ids) and nct_ids[0] in registry.index else None
        if record is not None and pd.notna(record["enrollment_count"]):
            target, target_source = int(record["enrollment_count"]), "registry"
        else:
            target, target_source = int(group["target_enrollment"].fillna(0).sum()), "site_targets"
        planned_end = None
        if record is not None and pd.notna(record["primary_completion_date"]):
            planned_end = pd.Timestamp(record["primary_completion_date"]).date()
        planned_start = pd.to_datetime(group["planned_activation_date"]).min()
        seed = study_seed(base_seed, study_id)
        summary, fan = forecast_study(
            group, as_of=as_of, target=target, planned_end=planned_end, draws=draws, seed=seed
        )
        rows.append(
            {
                "as_of_date": as_of,
                "study_id": study_id,
                "nct_id": nct_ids[0] if len(nct_ids) else None,
                "target_enrollment": target,
                "target_source": target_source,
                "planned_start_date": None if pd.isna(planned_start) else planned_start.date(),
                "planned_end_date": planned_end,
                "draws": draws,
                "seed": seed,
                **summary,
            }
        )
        fan_rows += [{"as_of_date": as_of, "study_id": study_id, **point} for point in fan]
    return (
        pa.Table.from_pylist(rows, schema=SCHEMA),
        pa.Table.from_pylist(fan_rows, schema=PATH_SCHEMA),
    )
