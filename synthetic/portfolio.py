"""A synthetic SMO portfolio whose truth is known: SMOs, studies, sites and their histories.

Everything is generated one site at a time from a random stream seeded by (seed, site key), so
the output is the same for a seed whatever the scale or iteration order, and `large` scale
streams with bounded memory. A site's full history (subjects, visits, deviations, payments,
staffing) is generated once; `snapshot_*` functions then cut it at a delivery date the way an
SMO export would show it on that day. Planted behaviours (slow sites, a high screen-failure
site, under-reporting, ...) are assigned before any data is drawn and written to the ground
truth. Subject demographics come from `synthetic.demographics` on streams of their own.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from synthetic.demographics import SEX_SKEW, skewed_unit
from synthetic.demographics import draw as draw_demographics
from synthetic.dialects import DIALECTS, Dialect

DAY = dt.timedelta(days=1)

REGIONS: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    # dialect -> (country, currency, cities)
    "iberia": (
        ("ES", "EUR", ("Madrid", "Barcelona", "Valencia", "Sevilla", "Bilbao")),
        ("PT", "EUR", ("Lisboa", "Porto", "Coimbra")),
        ("FR", "EUR", ("Lyon", "Toulouse", "Marseille")),
    ),
    "americas": (
        ("US", "USD", ("Boston", "Houston", "Denver", "Atlanta", "Seattle", "Chicago")),
        ("CA", "CAD", ("Toronto", "Montreal", "Vancouver")),
        ("MX", "MXN", ("Monterrey", "Guadalajara")),
        ("BR", "BRL", ("Sao Paulo", "Porto Alegre")),
    ),
    "nordic": (
        ("SE", "SEK", ("Stockholm", "Uppsala", "Lund")),
        ("DK", "DKK", ("Copenhagen", "Aarhus")),
        ("NO", "NOK", ("Oslo", "Bergen")),
        ("FI", "EUR", ("Helsinki", "Tampere")),
        ("PL", "PLN", ("Warsaw", "Krakow")),
    ),
    "sakura": (
        ("JP", "JPY", ("Tokyo", "Osaka", "Nagoya", "Fukuoka", "Sapporo")),
        ("KR", "KRW", ("Seoul", "Busan")),
        ("TW", "TWD", ("Taipei", "Kaohsiung")),
        ("AU", "AUD", ("Sydney", "Melbourne")),
    ),
}
VISIT_FEE = {
    "EUR": 450.0,
    "USD": 520.0,
    "CAD": 600.0,
    "MXN": 7800.0,
    "BRL": 2300.0,
    "SEK": 5100.0,
    "DKK": 3400.0,
    "NOK": 5300.0,
    "PLN": 1900.0,
    "JPY": 68000.0,
    "KRW": 620000.0,
    "TWD": 14500.0,
    "AUD": 700.0,
}
SITE_KINDS = (
    "University Hospital",
    "General Hospital",
    "Medical Center",
    "Research Clinic",
    "Cancer Institute",
    "Heart Center",
    "Clinical Research Unit",
)
CONDITIONS = (
    ("Non-small Cell Lung Cancer", "D002289"),
    ("Breast Neoplasms", "D001943"),
    ("Type 2 Diabetes Mellitus", "D003924"),
    ("Heart Failure", "D006333"),
    ("Rheumatoid Arthritis", "D001172"),
    ("Alzheimer Disease", "D000544"),
    ("Asthma", "D001249"),
    ("Psoriasis", "D011565"),
)
SF_REASONS = (
    "Inclusion criteria not met",
    "Exclusion criterion",
    "Lab values out of range",
    "Withdrew consent",
    "Investigator decision",
)
DC_REASONS = (
    "Adverse event",
    "Withdrawal by subject",
    "Lost to follow-up",
    "Physician decision",
    "Lack of efficacy",
)
DEVIATION_CATEGORIES = (
    ("Informed consent", "Consent form version outdated"),
    ("Eligibility", "Subject enrolled outside eligibility criteria"),
    ("Visit window", "Visit performed outside window"),
    ("Investigational product", "Dosing error"),
    ("Procedures", "Protocol-required assessment not done"),
    ("Safety reporting", "SAE reported late"),
)
SURNAMES = (
    "Garcia",
    "Smith",
    "Andersson",
    "Tanaka",
    "Kowalski",
    "Silva",
    "Martin",
    "Kim",
    "Nielsen",
    "Rossi",
    "Dubois",
    "Sato",
    "Lopez",
    "Chen",
    "Novak",
)

#: Planted site behaviours: role -> how many sites get it.
PLANTED_SITE_ROLES = {
    "never_enrolling": 2,
    "slow_enrolling": 2,
    "high_screen_failure": 1,
    "many_important_deviations": 1,
    "under_reporting_deviations": 1,
    "long_entry_lag": 1,
    "crc_turnover": 1,
    "retroactive_edits": 1,
}
#: The site KRI each planted role turns red (tests/test_marts_ground_truth.py checks the marts
#: find them); the sponsor's planted oversight actions target these flags.
PLANTED_ROLE_KRI = {
    "never_enrolling": "non_enrolling_site",
    "slow_enrolling": "enrollment_rate",
    "high_screen_failure": "screen_failure_rate",
    "many_important_deviations": "important_deviation_rate",
    "under_reporting_deviations": "important_deviation_rate",
    "long_entry_lag": "entry_lag_over_10d_share",
    "crc_turnover": "crc_turnover",
    "retroactive_edits": "retroactive_changes",
}


@dataclass(frozen=True)
class Scale:
    smos: int
    studies: int
    sites: int
    subjects: int
    registry_peers: int  # peer-cohort registry studies in total

    @staticmethod
    def named(name: str | float) -> Scale:
        if name == "demo":
            return Scale(smos=4, studies=4, sites=60, subjects=2000, registry_peers=80)
        if name == "large":
            return Scale(smos=10, studies=150, sites=9000, subjects=150_000, registry_peers=4850)
        factor = float(name)
        if factor <= 0:
            raise ValueError("scale must be demo, large or a positive multiplier of demo")
        return Scale(
            smos=min(10, max(4, round(4 * factor**0.35))),
            studies=min(150, max(4, round(4 * factor))),
            sites=max(40, round(60 * factor)),
            subjects=max(400, round(2000 * factor)),
            registry_peers=max(40, round(80 * factor)),
        )


@dataclass(frozen=True)
class SMO:
    smo_id: str
    dialect: Dialect
    feeds: tuple[str, ...]
    pays_late: bool
    #: Feeds and `feed.column`s this SMO was made not to deliver (see `build_portfolio`).
    withheld: tuple[str, ...] = ()


@dataclass(frozen=True)
class Study:
    study_id: str
    nct_id: str
    phase: str
    condition: str
    mesh_id: str
    start: dt.date  # first site selection
    treatment_days: int
    visit_every_days: int
    smo_ids: tuple[str, ...]
    target_enrollment: int = 0


@dataclass
class Site:
    smo_id: str
    study_id: str
    site_id: str
    site_name: str
    country: str
    currency: str
    city: str
    principal_investigator: str
    nct_id: str
    selected: dt.date
    irb_approval: dt.date
    contract_executed: dt.date
    planned_activation: dt.date
    activation: dt.date | None  # None: dropped before activation
    closed: dt.date | None
    target_enrollment: int
    role: str | None = None  # planted behaviour, if any

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.smo_id, self.study_id, self.site_id)


@dataclass
class SiteHistory:
    """Everything that ever happens at one site up to the last delivery date."""

    site: Site
    subjects: list[dict[str, Any]] = field(default_factory=list)
    visits: list[dict[str, Any]] = field(default_factory=list)
    deviations: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    staffing: list[dict[str, Any]] = field(default_factory=list)
    #: Retroactive edits applied from `edit_from` on: (kind, key, field, old, new).
    edits: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Portfolio:
    seed: int
    scale: Scale
    delivery_dates: tuple[dt.date, ...]
    smos: tuple[SMO, ...]
    studies: tuple[Study, ...]
    sites: tuple[Site, ...]
    base_screening_per_month: float
    #: (smo_id, study_id) planted enrolling women at SEX_SKEW's share, far under the plan.
    skewed_sex: tuple[str, str] | None = None

    @property
    def end(self) -> dt.date:
        return self.delivery_dates[-1]

    @property
    def edit_from(self) -> dt.date | None:
        """The delivery date from which retroactive edits show (None with a single week)."""
        if len(self.delivery_dates) < 2:
            return None
        return self.delivery_dates[max(1, len(self.delivery_dates) // 2)]

    def smo(self, smo_id: str) -> SMO:
        return next(s for s in self.smos if s.smo_id == smo_id)


def _rng(seed: int, *key: object) -> random.Random:
    return random.Random(":".join(str(k) for k in (seed, *key)))


def build_portfolio(
    seed: int,
    scale: Scale,
    weeks: int,
    end: dt.date,
    withheld: Mapping[str, Iterable[str]] | None = None,
) -> Portfolio:
    """SMOs, studies and site rosters (small: no subject-level data yet). `withheld` makes some
    SMOs deliver less than their dialect: {smo_id: ["deviations", "visits.crf_entry_date"]} drops
    a feed or a column from their files and profile (data sufficiency tests); the data drawn
    is the same."""
    rng = _rng(seed, "portfolio")
    dialect_cycle = ("iberia", "americas", "nordic", "sakura")
    withheld = {k: tuple(v) for k, v in (withheld or {}).items()}
    smos = []
    for i in range(scale.smos):
        dialect = DIALECTS[dialect_cycle[i % 4]]
        suffix = "" if i < 4 else f"-{i // 4 + 1}"
        smo_id = f"SMO-{dialect.name.upper()}{suffix}"
        gaps = withheld.pop(smo_id, ())
        dialect = dialect.without(gaps)
        smos.append(
            SMO(
                smo_id=smo_id,
                dialect=dialect,
                feeds=tuple(dialect.feeds),
                pays_late=(i == 1),  # the first `americas` SMO pays its sites late
                withheld=gaps,
            )
        )
    if withheld:
        raise ValueError(f"no such SMO to withhold from: {', '.join(sorted(withheld))}")
    delivery_dates = tuple(end - dt.timedelta(weeks=weeks - 1 - w) for w in range(weeks))
    studies = []
    for s in range(scale.studies):
        condition, mesh = CONDITIONS[s % len(CONDITIONS)]
        n_smo = 1 if scale.smos == 1 else 2
        smo_ids = tuple(smos[(s + k) % len(smos)].smo_id for k in range(n_smo))
        studies.append(
            Study(
                study_id=f"SYN-{s + 1:03d}",
                nct_id=f"NCT9{seed % 100:02d}{s + 1:05d}",
                phase=("PHASE3", "PHASE2", "PHASE3", "PHASE2|PHASE3")[s % 4],
                condition=condition,
                mesh_id=mesh,
                start=end - dt.timedelta(days=rng.randint(560, 720)),
                treatment_days=rng.choice((168, 252, 336)),
                visit_every_days=rng.choice((7, 10)),
                smo_ids=smo_ids,
            )
        )
    sites: list[Site] = []
    per_smo_counter: dict[str, int] = {}
    for n in range(scale.sites):
        study = studies[n % len(studies)]
        smo = next(
            s for s in smos if s.smo_id == study.smo_ids[(n // len(studies)) % len(study.smo_ids)]
        )
        per_smo_counter[smo.smo_id] = per_smo_counter.get(smo.smo_id, 0) + 1
        site_rng = _rng(seed, "site", n)
        country, currency, cities = site_rng.choice(REGIONS[smo.dialect.name])
        city = site_rng.choice(cities)
        selected = study.start + dt.timedelta(days=site_rng.randint(0, 120))
        irb = selected + dt.timedelta(days=site_rng.randint(20, 60))
        contract = selected + dt.timedelta(days=site_rng.randint(30, 90))
        planned = selected + dt.timedelta(days=90)
        activation = max(irb, contract) + dt.timedelta(days=site_rng.randint(5, 20))
        dropped = site_rng.random() < 0.11
        closed = None
        if not dropped and site_rng.random() < 0.05:
            closed = activation + dt.timedelta(days=site_rng.randint(200, 400))
            closed = closed if closed < end else None
        sites.append(
            Site(
                smo_id=smo.smo_id,
                study_id=study.study_id,
                site_id=f"{smo.dialect.name[:2].upper()}{per_smo_counter[smo.smo_id]:04d}",
                site_name=f"{city} {site_rng.choice(SITE_KINDS)} {n + 1}",
                country=country,
                currency=currency,
                city=city,
                principal_investigator=f"Dr. {site_rng.choice(SURNAMES)}",
                nct_id=study.nct_id,
                selected=selected,
                irb_approval=irb,
                contract_executed=contract,
                planned_activation=planned,
                activation=None if dropped else activation,
                closed=closed,
                target_enrollment=0,
            )
        )
    _plant_roles(sites, studies, rng, end)
    mean_active_months = sum(
        ((min(s.closed or end, end) - s.activation).days / 30.44) for s in sites if s.activation
    ) / max(1, sum(1 for s in sites if s.activation))
    active = [s for s in sites if s.activation and s.role not in ("never_enrolling",)]
    base_rate = scale.subjects / max(1, len(active)) / max(1.0, mean_active_months)
    studies = _with_targets(studies, sites, base_rate, end)
    for site in sites:
        months = 0 if site.activation is None else (end - site.activation).days / 30.44
        site.target_enrollment = max(2, round(base_rate * 0.85 * months * 0.9))
    return Portfolio(
        seed=seed,
        scale=scale,
        delivery_dates=delivery_dates,
        smos=tuple(smos),
        studies=tuple(studies),
        sites=tuple(sites),
        base_screening_per_month=base_rate,
        skewed_sex=skewed_unit(studies),
    )


def _with_targets(
    studies: list[Study], sites: list[Site], rate: float, end: dt.date
) -> list[Study]:
    out = []
    for study in studies:
        months = sum(
            (end - s.activation).days / 30.44
            for s in sites
            if s.study_id == study.study_id and s.activation
        )
        target = max(10, round(rate * 0.85 * months * 1.35 / 10) * 10)
        out.append(Study(**{**study.__dict__, "target_enrollment": target}))
    return out


def _plant_roles(sites: list[Site], studies: list[Study], rng: random.Random, end: dt.date) -> None:
    """Give planted behaviours to sites that were activated early, spread over the studies."""
    candidates = [
        s
        for s in sites
        if s.activation is not None and s.closed is None and (end - s.activation).days > 240
    ]
    by_study: dict[str, list[Site]] = {}
    for site in candidates:
        by_study.setdefault(site.study_id, []).append(site)
    order = [st.study_id for st in studies if len(by_study.get(st.study_id, [])) >= 5]
    slot = 0
    for role, count in PLANTED_SITE_ROLES.items():
        for _ in range(count):
            for _attempt in range(len(order)):
                pool = [s for s in by_study[order[slot % len(order)]] if s.role is None]
                slot += 1
                if len(pool) > 3:  # keep enough normal sites in a study to compare against
                    rng.choice(pool).role = role
                    break


# -- one site's history -----------------------------------------------------------------------


def site_history(portfolio: Portfolio, site: Site) -> SiteHistory:
    rng = _rng(portfolio.seed, "history", *site.key)
    study = next(s for s in portfolio.studies if s.study_id == site.study_id)
    smo = portfolio.smo(site.smo_id)
    end = portfolio.end
    history = SiteHistory(site)
    _staffing(history, rng, end)
    if site.activation is None:
        return history
    fee = VISIT_FEE[site.currency]
    _pay(history, rng, smo, "STARTUP", site.activation, fee * 8, end)
    role = site.role
    rate = portfolio.base_screening_per_month
    # A site that under-reports deviations is a busy one: plenty of exposure, too few reports.
    rate *= {"never_enrolling": 0.0, "slow_enrolling": 0.15, "under_reporting_deviations": 1.6}.get(
        role, 1.0
    )
    sf_prob = 0.6 if role == "high_screen_failure" else 0.08
    dev_per_day = 0.0065 * {
        "many_important_deviations": 4.0,
        "under_reporting_deviations": 0.04,
    }.get(role, 1.0)
    important_share = {"many_important_deviations": 0.8, "under_reporting_deviations": 0.0}.get(
        role, 0.3
    )
    lag_mean = 21.0 if role == "long_entry_lag" else 2.5
    women_share = SEX_SKEW["share"] if portfolio.skewed_sex == site.key[:2] else None
    stop = min(site.closed or end, end)
    day = site.activation + dt.timedelta(days=rng.randint(3, 20))
    number = 0
    while rate > 0:
        day += dt.timedelta(days=max(1, round(rng.expovariate(rate / 30.44))))
        if day > stop:
            break
        number += 1
        subject = _subject(rng, study, site, number, day, sf_prob, end)
        # Their own stream per subject: no draw above changes.
        subject |= draw_demographics(
            portfolio.seed, site.smo_id, study.study_id, subject["subject_id"], women_share
        )
        history.subjects.append(subject)
        _subject_events(
            history, rng, study, smo, subject, fee, dev_per_day, important_share, lag_mean, end
        )
    if site.closed:
        _pay(history, rng, smo, "CLOSEOUT", site.closed, fee * 4, end)
        held = sum(p["holdback_amount"] or 0.0 for p in history.payments)
        if held:
            _pay(history, rng, smo, "HOLDBACK_RELEASE", site.closed + 30 * DAY, held, end)
    if role == "retroactive_edits" and portfolio.edit_from is not None:
        _plan_edits(history, portfolio)
    return history


def _subject(
    rng, study: Study, site: Site, number: int, screened: dt.date, sf_prob: float, end: dt.date
) -> dict:
    subject = {
        "smo_id": site.smo_id,
        "study_id": study.study_id,
        "site_id": site.site_id,
        "subject_id": f"{site.site_id}-{number:04d}",
        "consent_date": screened - rng.randint(0, 3) * DAY,
        "screened_date": screened,
        "screen_failed_date": None,
        "screen_fail_reason": None,
        "randomized_date": None,
        "discontinued_date": None,
        "discontinuation_reason": None,
        "completed_date": None,
    }
    if rng.random() < sf_prob:
        subject["screen_failed_date"] = screened + rng.randint(3, 21) * DAY
        subject["screen_fail_reason"] = rng.choice(SF_REASONS)
        return subject
    randomized = screened + rng.randint(7, 28) * DAY
    subject["randomized_date"] = randomized
    if rng.random() < 0.12:
        subject["discontinued_date"] = randomized + rng.randint(30, study.treatment_days - 1) * DAY
        subject["discontinuation_reason"] = rng.choice(DC_REASONS)
    else:
        subject["completed_date"] = randomized + study.treatment_days * DAY
    return subject


def _subject_events(
    history, rng, study, smo, subject, fee, dev_per_day, important_share, lag_mean, end
):
    site = history.site
    sid = subject["subject_id"]
    visits = [("V01", "Screening", subject["screened_date"])]
    randomized = subject["randomized_date"]
    last_day = (
        subject["screen_failed_date"] or subject["discontinued_date"] or subject["completed_date"]
    )
    if randomized is not None:
        visits.append(("V02", "Baseline", randomized))
        n, day = 3, randomized + study.visit_every_days * DAY
        stop = subject["discontinued_date"] or subject["completed_date"]
        while day <= stop and day <= end + 42 * DAY:
            week = (day - randomized).days // 7
            # Two contacts in three are phone calls: visit records, but no visit fee.
            phone = n % 3 != 0
            visits.append((f"V{n:02d}", f"Week {week}" + (" (phone)" if phone else ""), day))
            n, day = n + 1, day + study.visit_every_days * DAY
    for visit_id, name, planned in visits:
        missed = visit_id not in ("V01", "V02") and rng.random() < 0.03
        actual = None if missed else planned + rng.randint(-2, 3) * DAY
        if actual is not None and visit_id in ("V01", "V02"):
            actual = planned
        entry = None if actual is None else actual + round(rng.expovariate(1 / lag_mean)) * DAY
        history.visits.append(
            {
                "smo_id": site.smo_id,
                "study_id": study.study_id,
                "subject_id": sid,
                "visit_id": visit_id,
                "visit_name": name,
                "planned_date": planned,
                "actual_date": actual,
                "crf_entry_date": entry,
                "_missed": missed,
            }
        )
        if actual is not None and visit_id != "V01" and not name.endswith("(phone)"):
            _pay(history, rng, smo, "VISIT", actual, fee, end, holdback=0.1)
    if subject["screen_failed_date"] is not None:
        _pay(history, rng, smo, "SCREEN_FAIL", subject["screen_failed_date"], fee * 0.5, end)
    if rng.random() < 0.05 and randomized is not None:
        _pay(
            history, rng, smo, "PASS_THROUGH", randomized + rng.randint(1, 60) * DAY, fee * 0.3, end
        )
    on_study_days = max(1, ((last_day or end) - subject["screened_date"]).days)
    for _ in range(_poisson(rng, dev_per_day * on_study_days)):
        occurred = subject["screened_date"] + rng.randint(0, on_study_days) * DAY
        identified = occurred + round(rng.expovariate(1 / 6)) * DAY
        reported = identified + rng.randint(0, 10) * DAY
        category, term = rng.choice(DEVIATION_CATEGORIES)
        history.deviations.append(
            {
                "smo_id": site.smo_id,
                "study_id": study.study_id,
                "deviation_id": f"DV-{site.site_id}-{len(history.deviations) + 1:05d}",
                "site_id": site.site_id,
                "subject_id": sid,
                "category": category,
                "term": term,
                "severity": "IMPORTANT" if rng.random() < important_share else "NON_IMPORTANT",
                "occurred_date": occurred,
                "identified_date": identified,
                "reported_date": reported,
                "closed_date": reported + rng.randint(5, 60) * DAY,
            }
        )


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _pay(
    history, rng, smo: SMO, item_type: str, trigger: dt.date, amount: float, end, holdback=0.0
):
    site = history.site
    invoice = trigger + rng.randint(5, 30) * DAY
    delay = rng.randint(60, 150) if smo.pays_late else rng.randint(5, 30)
    amount = round(amount * rng.uniform(0.95, 1.05), 2)
    history.payments.append(
        {
            "smo_id": site.smo_id,
            "study_id": site.study_id,
            "payment_line_id": f"PL-{site.site_id}-{len(history.payments) + 1:06d}",
            "site_id": site.site_id,
            "item_type": item_type,
            "amount": amount,
            "currency": site.currency,
            "holdback_amount": round(amount * holdback, 2) if holdback else None,
            "trigger_date": trigger,
            "invoice_date": invoice,
            "due_date": invoice + 30 * DAY,
            "paid_date": invoice + delay * DAY,
            "credit_note": None,
        }
    )


def _staffing(history: SiteHistory, rng: random.Random, end: dt.date) -> None:
    site = history.site
    tenure = (30, 50) if site.role == "crc_turnover" else (300, 700)
    roles = [("CRC", tenure, 1.0), ("SITE_MANAGER", (500, 900), 0.2)]
    if rng.random() < 0.75:
        roles.append(("BACKUP_CRC", (250, 600), 0.5))
    for role, (low, high), fte in roles:
        start = site.selected
        while start <= end:
            stop = start + rng.randint(low, high) * DAY
            history.staffing.append(
                {
                    "smo_id": site.smo_id,
                    "site_id": site.site_id,
                    "crc_id": f"ST-{site.site_id}-{len(history.staffing) + 1:03d}",
                    "role": role,
                    "start_date": start,
                    "end_date": stop,
                    "fte": fte,
                }
            )
            start = stop + DAY


def _plan_edits(history: SiteHistory, portfolio: Portfolio) -> None:
    """Three retroactive changes visible from `edit_from` on (spec 6: audit-trail signals)."""
    before = portfolio.delivery_dates[portfolio.delivery_dates.index(portfolio.edit_from) - 1]
    moved = next(
        (
            s
            for s in history.subjects
            if s["randomized_date"]
            and s["randomized_date"] <= before - 30 * DAY
            and (s["randomized_date"] - s["screened_date"]).days >= 3
        ),
        None,
    )
    if moved is not None:
        new = moved["randomized_date"] - 2 * DAY
        history.edits.append(
            {
                "kind": "subject_field_changed",
                "key": moved["subject_id"],
                "field": "randomized_date",
                "old": moved["randomized_date"],
                "new": new,
            }
        )
    visible = [d for d in history.deviations if d["identified_date"] <= before]
    non_important = [d for d in visible if d["severity"] == "NON_IMPORTANT"]
    important = [d for d in visible if d["severity"] == "IMPORTANT"]
    if not important and len(non_important) > 1:
        important = [non_important.pop()]
        important[0]["severity"] = "IMPORTANT"
    if non_important:
        history.edits.append(
            {
                "kind": "deviation_deleted",
                "key": non_important[0]["deviation_id"],
                "field": None,
                "old": None,
                "new": None,
            }
        )
    if important:
        history.edits.append(
            {
                "kind": "deviation_downgraded",
                "key": important[0]["deviation_id"],
                "field": "severity",
                "old": "IMPORTANT",
                "new": "NON_IMPORTANT",
            }
        )


# -- cutting a history at a delivery date -------------------------------------------------------


def _upto(value: dt.date | None, as_of: dt.date) -> dt.date | None:
    return value if value is not None and value <= as_of else None


def site_row(site: Site, as_of: dt.date) -> dict[str, Any]:
    activation = _upto(site.activation, as_of)
    closed = _upto(site.closed, as_of)
    if site.selected > as_of:
        status = "PLANNED"
    elif site.activation is None:
        status = "DROPPED" if as_of > site.planned_activation + 60 * DAY else "SELECTED"
    elif closed:
        status = "CLOSED"
    elif activation:
        status = "ENROLLING"
    else:
        status = "SELECTED"
    return {
        "smo_id": site.smo_id,
        "study_id": site.study_id,
        "site_id": site.site_id,
        "site_name": site.site_name,
        "country": site.country,
        "city": site.city,
        "principal_investigator": site.principal_investigator,
        "status": status,
        "nct_id": site.nct_id,
        "selected_date": _upto(site.selected, as_of),
        "irb_approval_date": _upto(site.irb_approval, as_of),
        "contract_executed_date": _upto(site.contract_executed, as_of),
        "activation_date": activation,
        "planned_activation_date": site.planned_activation,
        "closed_date": closed,
        "target_enrollment": site.target_enrollment,
    }


def snapshot(
    history: SiteHistory, feed: str, as_of: dt.date, edited: bool
) -> Iterator[dict[str, Any]]:
    """The rows of one feed for one site as the SMO's export on `as_of` shows them."""
    edits = {(e["kind"], e["key"]): e for e in history.edits} if edited else {}
    if feed == "sites":
        yield site_row(history.site, as_of)
    elif feed == "subjects":
        for s in history.subjects:
            if s["screened_date"] > as_of:
                continue
            row = {k: (_upto(v, as_of) if isinstance(v, dt.date) else v) for k, v in s.items()}
            edit = edits.get(("subject_field_changed", s["subject_id"]))
            if edit and row[edit["field"]] is not None:
                row[edit["field"]] = edit["new"]
            if row["screen_failed_date"] is None:
                row["screen_fail_reason"] = None
            if row["discontinued_date"] is None:
                row["discontinuation_reason"] = None
            yield row
    elif feed == "visits":
        # An export lists visits of subjects it knows, so none before the subject's screening.
        screened = {s["subject_id"] for s in history.subjects if s["screened_date"] <= as_of}
        for v in history.visits:
            if v["subject_id"] not in screened:
                continue
            if v["planned_date"] > as_of + 35 * DAY and v["visit_id"] not in ("V01", "V02"):
                continue
            if v["visit_id"] in ("V01", "V02") and v["planned_date"] > as_of:
                continue
            actual = _upto(v["actual_date"], as_of)
            if actual is not None:
                status = "COMPLETED"
            elif v["_missed"] and v["planned_date"] + 14 * DAY <= as_of:
                status = "MISSED"
            else:
                status = "SCHEDULED"
            yield {
                **v,
                "status": status,
                "actual_date": actual,
                "crf_entry_date": _upto(v["crf_entry_date"], as_of),
            }
    elif feed == "deviations":
        for d in history.deviations:
            if d["identified_date"] > as_of or ("deviation_deleted", d["deviation_id"]) in edits:
                continue
            row = {k: (_upto(v, as_of) if isinstance(v, dt.date) else v) for k, v in d.items()}
            if ("deviation_downgraded", d["deviation_id"]) in edits:
                row["severity"] = "NON_IMPORTANT"
            yield row
    elif feed == "payments":
        for p in history.payments:
            if p["trigger_date"] > as_of:
                continue
            invoiced = _upto(p["invoice_date"], as_of)
            yield {
                **p,
                "invoice_date": invoiced,
                "due_date": p["due_date"] if invoiced else None,
                "paid_date": _upto(p["paid_date"], as_of),
            }
    elif feed == "staffing":
        for a in history.staffing:
            if a["start_date"] <= as_of:
                yield {**a, "end_date": _upto(a["end_date"], as_of)}
    else:
        raise ValueError(f"unknown feed {feed}")
