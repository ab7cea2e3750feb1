"""Write a synthetic portfolio to disk: weekly deliveries, SMO profiles, registry fixtures, truth.

Layout of `out/`:
    inbox/<smo_id>/<file>      one full snapshot per SMO, feed (and study) and week
    inbox/SPONSOR/<file>       the sponsor's oversight actions, one full list per week
    profiles/<smo_id>.yaml     the ingest profile of each SMO's dialect (and SPONSOR.yaml)
    registry/                  ClinicalTrials.gov API v2-shaped fixtures (synthetic, offline)
    ground_truth.json          what was planted, for tests that check the marts find it

Sites are generated and written one at a time, so memory stays bounded at any scale.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from expectations.feeds import SPONSOR_ID
from synthetic.actions import profile as sponsor_profile
from synthetic.actions import write_actions
from synthetic.demographics import SEX_SKEW, plan_of
from synthetic.dialects import FeedWriter
from synthetic.portfolio import SMO, Portfolio, Scale, build_portfolio, site_history, snapshot

#: The default last delivery date: fixed, so a seed always yields the same bytes.
DEFAULT_END = dt.date(2026, 11, 16)


def _set_received_time(path: Path, delivery_date: dt.date) -> None:
    """Files 'arrive' at 06:00 UTC on their delivery date (the ledger's received_at)."""
    stamp = dt.datetime.combine(delivery_date, dt.time(6), dt.UTC).timestamp()
    os.utime(path, (stamp, stamp))


#: The planted bad delivery: one SMO's payments file of the second week carries a negative
#: amount that is not a credit note, so the delivery gate rejects it whole (the next week's file
#: supersedes it). Only with at least 4 weeks, so it lands before the retroactive edits.
REJECTED_FEED, REJECTED_RULE, REJECTED_MIN_WEEKS = "payments", "amount.non_negative", 4


class _SnapshotFiles:
    """Lazily opened writers: a file is created only when it gets a row (no empty snapshots)."""

    def __init__(self, smo: SMO, inbox: Path, spoil: tuple[str, dt.date] | None = None):
        self.smo, self.inbox = smo, inbox / smo.smo_id
        self.writers: dict[tuple[str, str | None, dt.date], FeedWriter] = {}
        self.spoil, self.spoiled = spoil, None

    def _spoil(self, feed: str, as_of: dt.date, rows: list[dict[str, Any]]) -> list[dict]:
        if self.spoiled is not None or (feed, as_of) != self.spoil:
            return rows
        for i, row in enumerate(rows):
            if row.get("credit_note") is None and (row.get("amount") or 0) > 0:
                self.spoiled = {"row": row, "value": -150.0}
                return [*rows[:i], {**row, "amount": -150.0}, *rows[i + 1 :]]
        return rows

    def write(self, feed: str, study_id: str, as_of: dt.date, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        rows = self._spoil(feed, as_of, rows)
        dialect = self.smo.dialect
        per_study = dialect.feeds[feed].per_study_file
        key = (feed, study_id if per_study else None, as_of)
        writer = self.writers.get(key)
        if writer is None:
            name = dialect.file_name(feed, as_of, study_id if per_study else None)
            title = f"{feed.title()} report as of {as_of.isoformat()}"
            writer = self.writers[key] = FeedWriter(dialect, feed, self.inbox / name, title)
        if self.spoiled is not None and "file_name" not in self.spoiled:
            self.spoiled["file_name"] = writer.path.name
        writer.write(rows)

    def close(self, study_id: str | None = None) -> list[Path]:
        """Close the writers of one study (per-study files) or all of them."""
        done = [k for k in self.writers if study_id is None or k[1] == study_id]
        paths = []
        for key in done:
            writer = self.writers.pop(key)
            writer.close()
            _set_received_time(writer.path, key[2])
            paths.append(writer.path)
        return paths


def write_deliveries(portfolio: Portfolio, out: Path) -> dict[str, Any]:
    """Every SMO's weekly snapshots; returns planted edits with their site context and the
    planted rejected delivery."""
    inbox = out / "inbox"
    edits: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    women: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # randomized, F
    edit_from = portfolio.edit_from
    spoiler = None
    if len(portfolio.delivery_dates) >= REJECTED_MIN_WEEKS:
        spoiler = next(
            (s.smo_id for s in portfolio.smos if not s.pays_late and REJECTED_FEED in s.feeds),
            None,
        )
    for smo in portfolio.smos:
        spoil = (REJECTED_FEED, portfolio.delivery_dates[1]) if smo.smo_id == spoiler else None
        files = _SnapshotFiles(smo, inbox, spoil)
        sites = sorted(
            (s for s in portfolio.sites if s.smo_id == smo.smo_id),
            key=lambda s: (s.study_id, s.site_id),
        )
        current_study = None
        for site in sites:
            if current_study is not None and site.study_id != current_study:
                files.close(current_study)
            current_study = site.study_id
            history = site_history(portfolio, site)
            for subject in history.subjects:
                randomized = subject["randomized_date"]
                if randomized is not None and randomized <= portfolio.end:
                    counts = women[site.key[:2]]
                    counts[0] += 1
                    counts[1] += subject["sex"] == "F"
            for edit in history.edits:
                edits.append(
                    {
                        **edit,
                        "smo_id": site.smo_id,
                        "study_id": site.study_id,
                        "site_id": site.site_id,
                    }
                )
            for as_of in portfolio.delivery_dates:
                edited = edit_from is not None and as_of >= edit_from
                for feed in smo.feeds:
                    files.write(
                        feed, site.study_id, as_of, list(snapshot(history, feed, as_of, edited))
                    )
        files.close()
        if files.spoiled is not None:
            rejected.append(
                {
                    "smo_id": smo.smo_id,
                    "feed": REJECTED_FEED,
                    "delivery_date": spoil[1].isoformat(),
                    "file_name": files.spoiled["file_name"],
                    "rule": REJECTED_RULE,
                    "column": "amount",
                    "value": files.spoiled["value"],
                }
            )
    return {"edits": edits, "rejected_deliveries": rejected, "women": dict(women)}


def planted_representativeness(
    portfolio: Portfolio, women: dict[tuple[str, str], list[int]]
) -> list[dict[str, Any]]:
    """The planted unit with its plan and what it enrolled by the last delivery date."""
    if portfolio.skewed_sex is None:
        return []
    smo_id, study_id = portfolio.skewed_sex
    group = next(
        g
        for g in plan_of(study_id)
        if (g.dimension, g.group_code) == ("sex", SEX_SKEW["group_code"])
    )
    randomized, in_group = women.get((smo_id, study_id), [0, 0])
    return [
        {
            "smo_id": smo_id,
            "study_id": study_id,
            "dimension": SEX_SKEW["dimension"],
            "group_code": SEX_SKEW["group_code"],
            "planted_share": SEX_SKEW["share"],
            "target_share": group.target_share,
            "minimum_share": group.minimum_share,
            "randomized": randomized,
            "randomized_in_group": in_group,
            "share": round(in_group / randomized, 4) if randomized else None,
        }
    ]


def ground_truth(
    portfolio: Portfolio,
    edits: list[dict[str, Any]],
    registry: dict[str, Any],
    rejected: list[dict[str, Any]] | None = None,
    actions: dict[str, Any] | None = None,
    women: dict[tuple[str, str], list[int]] | None = None,
) -> dict[str, Any]:
    dates = portfolio.delivery_dates
    edit_from = portfolio.edit_from
    previous = dates[dates.index(edit_from) - 1] if edit_from else None

    def iso(value: Any) -> Any:
        return value.isoformat() if isinstance(value, dt.date) else value

    return {
        "synthetic": True,
        "seed": portfolio.seed,
        "scale": asdict(portfolio.scale),
        "delivery_dates": [d.isoformat() for d in dates],
        "smos": [
            {
                "smo_id": s.smo_id,
                "dialect": s.dialect.name,
                "feeds": list(s.feeds),
                "withheld": list(s.withheld),
                "pays_late": s.pays_late,
            }
            for s in portfolio.smos
        ],
        "studies": [
            {
                "study_id": st.study_id,
                "nct_id": st.nct_id,
                "phase": st.phase,
                "condition": st.condition,
                "target_enrollment": st.target_enrollment,
                "smo_ids": list(st.smo_ids),
            }
            for st in portfolio.studies
        ],
        "planted_sites": [
            {"role": s.role, "smo_id": s.smo_id, "study_id": s.study_id, "site_id": s.site_id}
            for s in portfolio.sites
            if s.role
        ],
        # A unit enrolling far fewer of a group than its diversity plan (representativeness).
        "planted_representativeness": planted_representativeness(portfolio, women or {}),
        "late_paying_smos": [s.smo_id for s in portfolio.smos if s.pays_late],
        "rejected_deliveries": rejected or [],
        "sites_never_activated": [
            {"smo_id": s.smo_id, "study_id": s.study_id, "site_id": s.site_id}
            for s in portfolio.sites
            if s.activation is None
        ],
        "retroactive_edits": [
            {
                "kind": e["kind"],
                "smo_id": e["smo_id"],
                "study_id": e["study_id"],
                "site_id": e["site_id"],
                "key": e["key"],
                "field": e["field"],
                "old": iso(e["old"]),
                "new": iso(e["new"]),
                "previous_delivery_date": iso(previous),
                "changed_in_delivery_date": iso(edit_from),
            }
            for e in edits
        ],
        "registry": registry,
        "oversight_actions": actions or {},
    }


def generate(
    out: Path,
    *,
    scale: str | float = "demo",
    weeks: int = 8,
    seed: int = 7,
    end: dt.date = DEFAULT_END,
    withheld: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Generate everything under `out`; returns the ground truth (also written to disk).
    `withheld`: feeds or `feed.column`s some SMOs do not deliver (see `build_portfolio`)."""
    from synthetic.registry import write_registry_fixtures

    if weeks < 1:
        raise ValueError("weeks must be at least 1")
    out = Path(out)
    portfolio = build_portfolio(seed, Scale.named(scale), weeks, end, withheld)
    profiles = out / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    for smo in portfolio.smos:
        profile = smo.dialect.profile(smo.smo_id)
        text = yaml.safe_dump(profile, allow_unicode=True, sort_keys=False)
        (profiles / f"{smo.smo_id}.yaml").write_text(text, encoding="utf-8")
    delivered = write_deliveries(portfolio, out)
    text = yaml.safe_dump(sponsor_profile(), allow_unicode=True, sort_keys=False)
    (profiles / f"{SPONSOR_ID}.yaml").write_text(text, encoding="utf-8")
    files, actions = write_actions(portfolio, out / "inbox", delivered["rejected_deliveries"])
    for path, delivery_date in files:
        _set_received_time(path, delivery_date)
    registry = write_registry_fixtures(portfolio, out / "registry")
    truth = ground_truth(
        portfolio,
        delivered["edits"],
        registry,
        delivered["rejected_deliveries"],
        actions,
        delivered["women"],
    )
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n")
    return truth


def file_counts(out: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for path in (Path(out) / "inbox").rglob("*"):
        if path.is_file():
            counts[path.parent.name] += 1
    return dict(counts)
