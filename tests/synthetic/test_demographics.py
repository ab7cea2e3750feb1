"""Synthetic demographics: drawn at each study's plan, one SMO x study planted far below its
minimum share of women (in the ground truth and visible in the raw files), NORDIC without race
and ethnicity."""

from __future__ import annotations

import csv
import dataclasses
import json
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
import yaml

from synthetic.demographics import COLUMN_OF, SEX_SKEW, plan_of
from synthetic.generate import DEFAULT_END, generate
from synthetic.portfolio import Scale, build_portfolio, site_history

DEMOGRAPHIC_KEYS = {"sex", "age", "age_group", "race", "ethnic"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo portfolio's last week (same draws as `make demo`'s last delivery)."""
    out = tmp_path_factory.mktemp("demo")
    generate(out, scale="demo", weeks=1, seed=7)
    return out


@pytest.fixture(scope="module")
def demo_portfolio():
    return build_portfolio(7, Scale.named("demo"), 8, DEFAULT_END)


def randomized_groups(portfolio) -> dict[tuple[str, str], Counter]:
    """(smo, study) -> counts of randomized subjects by the end per (dimension, value), from the
    subjects' histories; ("n", "") is the total."""
    counts: dict[tuple[str, str], Counter] = {}
    for site in portfolio.sites:
        for s in site_history(portfolio, site).subjects:
            if s["randomized_date"] and s["randomized_date"] <= portfolio.end:
                c = counts.setdefault(site.key[:2], Counter())
                c["n", ""] += 1
                for dimension, column in COLUMN_OF.items():
                    c[dimension, s[column]] += 1
    return counts


def below_minimum(study_id: str, counts: Counter) -> set[tuple[str, str]]:
    n = counts["n", ""]
    return {
        (g.dimension, g.group_code)
        for g in plan_of(study_id)
        if g.minimum_share is not None and counts[g.dimension, g.group_code] / n < g.minimum_share
    }


def test_only_the_planted_unit_is_below_a_minimum_share_and_only_for_women(demo_portfolio):
    planted = demo_portfolio.skewed_sex
    counts = randomized_groups(demo_portfolio)
    n = counts[planted]["n", ""]
    assert n >= 40 and counts[planted]["sex", "F"] / n <= 0.15
    assert below_minimum(planted[1], counts[planted]) == {("sex", "F")}
    others = {u: c for u, c in counts.items() if u != planted and c["n", ""] >= 20}
    assert len(others) >= 6
    for (smo_id, study_id), c in others.items():
        assert below_minimum(study_id, c) == set(), (smo_id, study_id)


def test_the_plant_is_in_ground_truth_and_the_raw_file_shows_it(demo):
    truth = json.loads((demo / "ground_truth.json").read_text())
    [plant] = truth["planted_representativeness"]
    assert (plant["dimension"], plant["group_code"]) == ("sex", "F")
    assert plant["planted_share"] == SEX_SKEW["share"] < plant["minimum_share"]
    # The AMERICAS dialect writes one file per study in English labels.
    assert plant["smo_id"] == "SMO-AMERICAS"
    path = demo / "inbox" / plant["smo_id"] / f"AMR_{plant['study_id']}_Subjects_20261116.csv"
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Randomization Date"]]
    female = sum(r["Sex"] == "Female" for r in rows)
    assert (plant["randomized"], plant["randomized_in_group"]) == (len(rows), female)
    assert plant["share"] == round(female / len(rows), 4) < plant["minimum_share"]
    # Its study's other SMO enrols at the plan.
    study = next(s for s in truth["studies"] if s["study_id"] == plant["study_id"])
    [other] = [s for s in study["smo_ids"] if s != plant["smo_id"]]
    assert other == "SMO-IBERIA"
    path = demo / "inbox" / other / "IBERIA_pacientes_20261116.csv"
    with path.open(encoding="cp1252", newline="") as handle:
        rows = [
            r
            for r in csv.DictReader(handle, delimiter=";")
            if r["Fecha aleatorización"] and r["Estudio"] == plant["study_id"]
        ]
    share = sum(r["Sexo"] == "Mujer" for r in rows) / len(rows)
    assert len(rows) >= 20 and share >= plant["minimum_share"]


def test_nordic_files_carry_age_bands_and_no_race_or_ethnicity(demo):
    [path] = (demo / "inbox" / "SMO-NORDIC").glob("NSS_Subjects_*.xlsx")
    sheet = openpyxl.load_workbook(path, read_only=True)["Subjects"]
    header, *rows = [list(r) for r in sheet.iter_rows(min_row=4, values_only=True)]
    profile = yaml.safe_load((demo / "profiles" / "SMO-NORDIC.yaml").read_text())
    columns = profile["feeds"]["subjects"]["columns"]
    mapped = {columns.get(h, h) for h in header}
    assert {"sex", "age_group"} <= mapped
    assert not mapped & {"race", "ethnic", "age"}
    bands = Counter(r[header.index("Åldersgrupp")] for r in rows)
    assert set(bands) == {"18–64 år", "65–74 år", "75 år och äldre"}
    assert set(profile["feeds"]["subjects"]["codes"]["age_group"].values()) == {
        "18-64",
        "65-74",
        "75+",
    }


def test_the_plant_changes_the_planted_units_sex_only(demo_portfolio):
    """Demographics come from a stream of their own: without the plant, every other value of
    the planted unit's subjects is the same."""
    plain = dataclasses.replace(demo_portfolio, skewed_sex=None)
    sites = [s for s in demo_portfolio.sites if s.key[:2] == demo_portfolio.skewed_sex]
    changed = 0
    for site in sites:
        skewed, normal = site_history(demo_portfolio, site), site_history(plain, site)
        assert (skewed.visits, skewed.payments, skewed.deviations) == (
            normal.visits,
            normal.payments,
            normal.deviations,
        )
        for a, b in zip(skewed.subjects, normal.subjects, strict=True):
            assert {k: v for k, v in a.items() if k != "sex"} == {
                k: v for k, v in b.items() if k != "sex"
            }
            changed += a["sex"] != b["sex"]
    assert changed > 10
