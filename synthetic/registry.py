"""Synthetic ClinicalTrials.gov API v2 records for the portfolio and a peer cohort.

Shaped like `GET /api/v2/studies/{nctId}` responses and written in the offline replay layout
the registry client reads, so `make demo` needs no network. Every record is marked synthetic
(`briefTitle` starts with "[SYNTHETIC]" and a top-level `"synthetic": true`, an unknown key the
registry readers ignore). Planted for the registry-hygiene marts: some roster sites missing from
their study's registry locations, registry-only locations, and stale records.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

from synthetic.portfolio import CONDITIONS, Portfolio, Study

PEER_SPONSORS = (
    "Acme Pharma",
    "Borealis Therapeutics",
    "Cobalt Biosciences",
    "Delta Biologics",
    "Evergreen Oncology",
    "Fjord Medical",
)
PEER_COUNTRIES = (
    ("United States", "Boston"),
    ("Germany", "Berlin"),
    ("Japan", "Tokyo"),
    ("Spain", "Madrid"),
    ("Brazil", "Sao Paulo"),
    ("Poland", "Warsaw"),
)
COUNTRY_NAMES = {
    "ES": "Spain",
    "PT": "Portugal",
    "FR": "France",
    "US": "United States",
    "CA": "Canada",
    "MX": "Mexico",
    "BR": "Brazil",
    "SE": "Sweden",
    "DK": "Denmark",
    "NO": "Norway",
    "FI": "Finland",
    "PL": "Poland",
    "JP": "Japan",
    "KR": "Korea, Republic of",
    "TW": "Taiwan",
    "AU": "Australia",
}


def _date_struct(day: dt.date, kind: str, month_only: bool = False) -> dict[str, str]:
    return {"date": day.strftime("%Y-%m" if month_only else "%Y-%m-%d"), "type": kind}


def _record(
    nct_id: str,
    title: str,
    status: str,
    phases: list[str],
    condition: str,
    mesh_id: str,
    sponsor: str,
    enrollment: int,
    enrollment_type: str,
    start: dt.date,
    primary_completion: dt.date,
    completion_type: str,
    last_update: dt.date,
    locations: list[dict[str, Any]],
    month_only: bool,
) -> dict[str, Any]:
    start_type = "ACTUAL" if status != "NOT_YET_RECRUITING" else "ESTIMATED"
    return {
        "synthetic": True,
        "protocolSection": {
            "identificationModule": {
                "nctId": nct_id,
                "briefTitle": f"[SYNTHETIC] {title}",
                "organization": {"fullName": sponsor, "class": "INDUSTRY"},
            },
            "statusModule": {
                "overallStatus": status,
                "startDateStruct": _date_struct(start, start_type, month_only),
                "primaryCompletionDateStruct": _date_struct(primary_completion, completion_type),
                "completionDateStruct": _date_struct(
                    primary_completion + dt.timedelta(days=90), completion_type
                ),
                "lastUpdatePostDateStruct": {"date": last_update.isoformat(), "type": "ACTUAL"},
                "studyFirstPostDateStruct": {
                    "date": (start - dt.timedelta(days=30)).isoformat(),
                    "type": "ACTUAL",
                },
            },
            "sponsorCollaboratorsModule": {"leadSponsor": {"name": sponsor, "class": "INDUSTRY"}},
            "conditionsModule": {"conditions": [condition]},
            "designModule": {
                "studyType": "INTERVENTIONAL",
                "phases": phases,
                "enrollmentInfo": {"count": enrollment, "type": enrollment_type},
            },
            "armsInterventionsModule": {
                "interventions": [{"type": "DRUG", "name": f"SYN-{nct_id[-4:]}"}]
            },
            "contactsLocationsModule": {"locations": locations},
        },
        "derivedSection": {
            "conditionBrowseModule": {"meshes": [{"id": mesh_id, "term": condition}]}
        },
        "hasResults": False,
    }


def portfolio_records(
    portfolio: Portfolio, rng: random.Random
) -> tuple[list[dict], dict[str, Any]]:
    records, missing_sites, stale = [], [], []
    end = portfolio.end
    for i, study in enumerate(portfolio.studies):
        roster = [s for s in portfolio.sites if s.study_id == study.study_id and s.activation]
        locations = []
        for site in roster:
            if rng.random() < 0.1:  # planted: an active roster site the registry does not list
                missing_sites.append(
                    {"smo_id": site.smo_id, "study_id": site.study_id, "site_id": site.site_id}
                )
                continue
            facility = site.site_name.upper() if rng.random() < 0.3 else site.site_name
            locations.append(
                {
                    "facility": facility,
                    "city": site.city,
                    "country": COUNTRY_NAMES[site.country],
                    "status": "RECRUITING",
                }
            )
        locations.append(
            {"facility": "Research Site", "city": "Springfield", "country": "United States"}
        )
        is_stale = i % 4 == 3
        status = "NOT_YET_RECRUITING" if is_stale else "RECRUITING"
        last_update = end - dt.timedelta(days=420 if is_stale else rng.randint(5, 120))
        if is_stale:
            stale.append(study.nct_id)
        records.append(
            _record(
                study.nct_id,
                f"A study of SYN-{i + 1:03d} in {study.condition}",
                status,
                study.phase.split("|"),
                study.condition,
                study.mesh_id,
                "Synthetic Sponsor Inc.",
                study.target_enrollment,
                "ESTIMATED",
                study.start,
                end + dt.timedelta(days=365),
                "ESTIMATED",
                last_update,
                locations,
                month_only=False,
            )
        )
    return records, {
        "roster_sites_missing_from_registry": missing_sites,
        "stale_registry_studies": stale,
    }


def peer_records(portfolio: Portfolio, rng: random.Random) -> list[dict]:
    """Completed industry studies sharing each portfolio study's condition and phase."""
    records = []
    per_study = max(1, portfolio.scale.registry_peers // len(portfolio.studies))
    serial = 0
    for study in portfolio.studies:
        for _ in range(per_study):
            serial += 1
            sites = rng.randint(8, 60)
            months = rng.randint(14, 40)
            # participants per site-month, median ~1.5: the synthetic portfolio recruits fast, and a
            # cohort far below it would put every site at the 100th percentile
            rate = rng.gammavariate(3.0, 1.6 / 3.0)
            start = portfolio.end - dt.timedelta(days=rng.randint(3 * 365, 9 * 365))
            primary = start + dt.timedelta(days=round(months * 30.44))
            country, city = rng.choice(PEER_COUNTRIES)
            locations = [
                {
                    "facility": "Local Institution"
                    if k % 5 == 0
                    else f"Peer Hospital {serial}-{k}",
                    "city": city,
                    "country": country,
                }
                for k in range(sites)
            ]
            records.append(
                _record(
                    f"NCT8{portfolio.seed % 100:02d}{serial:05d}",
                    f"Peer study {serial} in {study.condition}",
                    "COMPLETED",
                    _phases(study),
                    study.condition,
                    study.mesh_id,
                    rng.choice(PEER_SPONSORS),
                    max(10, round(rate * sites * months)),
                    "ACTUAL",
                    start,
                    primary,
                    "ACTUAL",
                    primary + dt.timedelta(days=rng.randint(30, 400)),
                    locations,
                    month_only=rng.random() < 0.33,
                )
            )
    return records


def _phases(study: Study) -> list[str]:
    return study.phase.split("|")


def write_registry_fixtures(portfolio: Portfolio, out: Path) -> dict[str, Any]:
    """Write the replay directory; return the planted registry truth for ground_truth.json."""
    from ingest.registry.sources import write_replay_dir

    rng = random.Random(f"{portfolio.seed}:registry")
    own, planted = portfolio_records(portfolio, rng)
    peers = peer_records(portfolio, rng)
    data_timestamp = f"{portfolio.end.isoformat()}T09:00:00"
    write_replay_dir(own + peers, out, data_timestamp)
    (out / "README.txt").write_text(
        "SYNTHETIC ClinicalTrials.gov API v2-shaped records generated by smo-oversight's\n"
        "synthetic package. They describe no real study. NCT ids start with NCT9 (portfolio)\n"
        "or NCT8 (peer cohort), ranges the registry has not assigned.\n"
    )
    return {
        **planted,
        "data_timestamp": data_timestamp,
        "portfolio_nct_ids": [s.nct_id for s in portfolio.studies],
        "peer_count": len(peers),
        "conditions": sorted({c for c, _ in CONDITIONS}),
    }
