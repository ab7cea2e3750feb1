"""Synthetic demographics: each subject's sex, age (and age band), race and ethnicity in CDISC
terms, drawn from the study's diversity plan (seeds/diversity_plans.csv).

Every subject draws from a random stream of its own, keyed on (seed, 'demographics', SMO,
study, subject), so adding demographics changed no other draw of the generator. Plan groups get
their target shares; terms outside the plan (other races, NOT REPORTED, UNKNOWN) get what the
plan leaves, and a few percent where the plan covers everyone. One SMO x study unit is planted
enrolling far fewer women than its plan (`SEX_SKEW`, recorded in the ground truth).
"""

from __future__ import annotations

import csv
import functools
import random
from dataclasses import dataclass
from typing import Any

from core.settings import DBT_PROJECT_DIR

PLANS_CSV = DBT_PROJECT_DIR / "seeds" / "diversity_plans.csv"
DIMENSIONS = ("sex", "age_group", "race", "ethnicity")
#: The subjects column of each plan dimension (CDISC names the ethnicity variable ETHNIC).
COLUMN_OF = {"sex": "sex", "age_group": "age_group", "race": "race", "ethnicity": "ethnic"}
#: Terms a subject may have outside the plan's groups, sharing what the plan leaves.
OUTSIDE_PLAN = {
    "sex": ("U",),
    "race": (
        "AMERICAN INDIAN OR ALASKA NATIVE",
        "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER",
        "MULTIPLE",
        "OTHER",
        "NOT REPORTED",
        "UNKNOWN",
    ),
    "ethnicity": ("NOT REPORTED", "UNKNOWN"),
}
#: Share kept for OUTSIDE_PLAN terms where the plan's targets add up to 1 (race and ethnicity:
#: unknowns are real; sex is always recorded in a trial).
UNREPORTED = {"race": 0.03, "ethnicity": 0.03}
OLDEST = 90  # the upper end of an open band (75+)
#: The planted unit: women at this share where the plan says 45-55%. Its unit is the first
#: study's last SMO (`skewed_unit`); every other unit samples at target.
SEX_SKEW = {"dimension": "sex", "group_code": "F", "share": 0.10}


@dataclass(frozen=True)
class PlanGroup:
    dimension: str
    group_code: str
    target_share: float
    minimum_share: float | None
    age_min: int | None
    age_max: int | None


def _group(dimension, group_code, target, minimum=None, age_min=None, age_max=None) -> PlanGroup:
    return PlanGroup(dimension, group_code, target, minimum, age_min, age_max)


#: For studies without a diversity plan: a plausible population (no minimums).
DEFAULT_PLAN = (
    _group("sex", "F", 0.5),
    _group("sex", "M", 0.5),
    _group("age_group", "18-64", 0.6, age_min=18, age_max=64),
    _group("age_group", "65-74", 0.25, age_min=65, age_max=74),
    _group("age_group", "75+", 0.15, age_min=75),
    _group("race", "WHITE", 0.6),
    _group("race", "BLACK OR AFRICAN AMERICAN", 0.13),
    _group("race", "ASIAN", 0.15),
    _group("ethnicity", "HISPANIC OR LATINO", 0.15),
    _group("ethnicity", "NOT HISPANIC OR LATINO", 0.85),
)


@functools.cache
def diversity_plans() -> dict[str, tuple[PlanGroup, ...]]:
    """study_id -> the plan's groups, from the seed the marts read."""

    def number(text: str, kind=float):
        return kind(text) if text.strip() else None

    plans: dict[str, list[PlanGroup]] = {}
    with PLANS_CSV.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            plans.setdefault(row["study_id"], []).append(
                PlanGroup(
                    dimension=row["dimension"],
                    group_code=row["group_code"],
                    target_share=float(row["target_share"]),
                    minimum_share=number(row["minimum_share"]),
                    age_min=number(row["age_min"], int),
                    age_max=number(row["age_max"], int),
                )
            )
    return {study: tuple(groups) for study, groups in plans.items()}


def plan_of(study_id: str) -> tuple[PlanGroup, ...]:
    return diversity_plans().get(study_id, DEFAULT_PLAN)


def age_band(age: int, plan: tuple[PlanGroup, ...]) -> str | None:
    """The plan's band holding `age` (None: in no band)."""
    for g in plan:
        if g.dimension == "age_group" and g.age_min <= age <= (g.age_max or 200):
            return g.group_code
    return None


def _choose(rng: random.Random, weights: list[tuple[str, float]]) -> str:
    point, total = rng.random() * sum(w for _, w in weights), 0.0
    for value, weight in weights:
        total += weight
        if point < total:
            return value
    return weights[-1][0]


def _weights(plan: tuple[PlanGroup, ...], dimension: str) -> list[tuple[str, float]]:
    groups = [(g.group_code, g.target_share) for g in plan if g.dimension == dimension]
    covered = sum(w for _, w in groups)
    rest = max(0.0, 1.0 - covered)
    if rest < 1e-9:
        rest = UNREPORTED.get(dimension, 0.0)
        groups = [(code, w * (1 - rest)) for code, w in groups]
    outside = [t for t in OUTSIDE_PLAN.get(dimension, ()) if t not in dict(groups)]
    if rest > 0 and outside:
        groups += [(t, rest / len(outside)) for t in outside]
    return groups


def draw(
    seed: int, smo_id: str, study_id: str, subject_id: str, women_share: float | None = None
) -> dict[str, Any]:
    """One subject's demographics in CDISC terms; `women_share` overrides the plan (the plant)."""
    rng = random.Random(f"{seed}:demographics:{smo_id}:{study_id}:{subject_id}")
    plan = plan_of(study_id)
    sex_weights = _weights(plan, "sex")
    if women_share is not None:
        sex_weights = [("F", women_share), ("M", 1 - women_share)]
    sex = _choose(rng, sex_weights)
    band = _choose(rng, _weights(plan, "age_group"))
    group = next(g for g in plan if g.dimension == "age_group" and g.group_code == band)
    age = rng.randint(group.age_min, group.age_max or OLDEST)
    return {
        "sex": sex,
        "age": age,
        "age_group": age_band(age, plan),
        "race": _choose(rng, _weights(plan, "race")),
        "ethnic": _choose(rng, _weights(plan, "ethnicity")),
    }


def skewed_unit(studies) -> tuple[str, str] | None:
    """(smo_id, study_id) of the planted unit: the first study's last SMO."""
    if not studies:
        return None
    return studies[0].smo_ids[-1], studies[0].study_id
