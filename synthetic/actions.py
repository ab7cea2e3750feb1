"""The sponsor's oversight actions (spec 2.5), as its clinical-operations team would deliver them.

One file per weekly delivery date into `inbox/SPONSOR/`, each the full current list (CSV in
even weeks, XLSX in odd ones, read by the two entries of the SPONSOR profile). What is planted:
- every planted red-flag site gets an action on each KRI its role turns red, opened a few days
  after the flag's first as-of week, except one flag deliberately left unattended;
- one action stays OPEN past its due date (overdue at the last delivery date), the others move
  OPEN -> IN_PROGRESS -> DONE (closed_date and outcome) before their due date;
- the QTLs the planted deviation site pushes over their limit get an evaluation (a QTL action,
  its conclusion the outcome);
- each SMO has a standing governance action from before the first week (so the first file is
  never empty; one is CANCELLED); the SMO whose delivery was rejected gets a follow-up.
No action targets a delivery: delivery ids are given at ingest, not known here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from expectations.feeds import SPONSOR_ID
from synthetic.dialects import Dialect, FeedDialect, FeedWriter
from synthetic.portfolio import PLANTED_ROLE_KRI, Portfolio

FEED = "oversight_actions"
#: Days after the flag's first as-of week an action is opened (by the position of the site).
OPEN_AFTER_DAYS = (2, 3, 4, 5)
DUE_AFTER_DAYS = 28
#: The overdue action is due a week after it is opened, and nobody touches it again.
OVERDUE_DUE_AFTER_DAYS = 7
#: QTLs a site with many important deviations pushes over their limit (checked in a demo run).
PLANTED_QTLS = {
    "many_important_deviations": ("important_deviation_rate", "important_eligibility_deviations")
}

_HEADERS = {
    "action_id": "Action ID",
    "study_id": "Study",
    "target_type": "Target",
    "site_id": "Site",
    "kri_id": "KRI",
    "qtl_id": "QTL",
    "target_smo_id": "SMO",
    "target_delivery_id": "Delivery ID",
    "opened_date": "Opened",
    "owner": "Owner",
    "action_text": "Action",
    "due_date": "Due",
    "status": "Status",
    "closed_date": "Closed",
    "outcome": "Outcome",
}
_STATUS_CODES = {"OPEN": "Open", "IN_PROGRESS": "In progress", "DONE": "Done",
                 "CANCELLED": "Cancelled"}  # fmt: skip

CSV_DIALECT = Dialect(
    name="sponsor",
    description="The sponsor's oversight action list: CSV or XLSX, English headers",
    file_type="csv",
    date_format="%Y-%m-%d",
    feeds={
        FEED: FeedDialect(
            file_pattern="oversight_actions_{delivery_date:%Y%m%d}.csv",
            headers=_HEADERS,
            codes={"status": _STATUS_CODES},
        )
    },
)
XLSX_DIALECT = replace(
    CSV_DIALECT,
    file_type="xlsx",
    feeds={
        FEED: replace(
            CSV_DIALECT.feeds[FEED],
            file_pattern="oversight_actions_{delivery_date:%Y%m%d}.xlsx",
            sheet="Actions",
        )
    },
)


@dataclass(frozen=True)
class Action:
    """One action over its life: what each weekly snapshot shows depends on the date."""

    action_id: str
    study_id: str
    target: dict[str, Any]  # target_type and its target columns
    opened: dt.date
    owner: str
    text: str
    due: dt.date
    closes: dt.date | None = None  # None: never closed
    closed_status: str = "DONE"
    outcome: str | None = None
    starts: dt.date | None = None  # IN_PROGRESS from then on (None: stays OPEN)

    def row(self, as_of: dt.date) -> dict[str, Any] | None:
        if self.opened > as_of:
            return None
        closed = self.closes is not None and self.closes <= as_of
        if closed:
            status = self.closed_status
        elif self.starts is not None and self.starts <= as_of:
            status = "IN_PROGRESS"
        else:
            status = "OPEN"
        return {
            "action_id": self.action_id,
            "study_id": self.study_id,
            **self.target,
            "opened_date": self.opened,
            "owner": self.owner,
            "action_text": self.text,
            "due_date": self.due,
            "status": status,
            "closed_date": self.closes if closed else None,
            "outcome": self.outcome if closed else None,
        }


def profile() -> dict[str, Any]:
    """The SPONSOR profile: one entry per file format of the actions feed."""
    csv_profile = CSV_DIALECT.profile(SPONSOR_ID)
    xlsx_feed = XLSX_DIALECT.profile(SPONSOR_ID)["feeds"][FEED]
    xlsx_feed = {"feed": FEED, **xlsx_feed, "file": {"type": "xlsx", "sheet": "Actions"}}
    csv_profile["description"] = "The sponsor's oversight actions (synthetic)"
    csv_profile["feeds"][f"{FEED}_xlsx"] = xlsx_feed
    return csv_profile


def plan_actions(portfolio: Portfolio, rejected: list[dict[str, Any]]) -> tuple[list[Action], dict]:
    """Every action of the portfolio's period, and what was planted (for the ground truth)."""
    dates = portfolio.delivery_dates
    first, last = dates[0], dates[-1]
    actions: list[Action] = []
    counter = iter(range(1, 10_000))

    def next_id() -> str:
        return f"ACT-{next(counter):04d}"

    for n, smo in enumerate(portfolio.smos):  # standing governance actions
        study = next(s.study_id for s in portfolio.studies if smo.smo_id in s.smo_ids)
        opened = first - dt.timedelta(days=5)
        cancelled = n == len(portfolio.smos) - 1
        actions.append(
            Action(
                next_id(), study, {"target_type": "SMO", "target_smo_id": smo.smo_id}, opened,
                "Vendor oversight lead", f"Quarterly oversight review of {smo.smo_id}",
                opened + dt.timedelta(days=30), closes=first + dt.timedelta(days=9),
                closed_status="CANCELLED" if cancelled else "DONE",
                outcome="Merged into the portfolio review" if cancelled
                else "Review held; no findings beyond the open site flags",
                starts=first,
            )
        )  # fmt: skip
    for r in rejected:  # a follow-up on a rejected delivery, on the SMO (ids are not known)
        opened = dt.date.fromisoformat(r["delivery_date"]) + dt.timedelta(days=1)
        if opened > last:
            continue
        study = next(s.study_id for s in portfolio.studies if r["smo_id"] in s.smo_ids)
        actions.append(
            Action(
                next_id(), study, {"target_type": "SMO", "target_smo_id": r["smo_id"]}, opened,
                "Data management", f"Ask for a corrected {r['feed']} file ({r['file_name']} "
                f"was rejected: {r['rule']})", opened + dt.timedelta(days=14),
                closes=opened + dt.timedelta(days=6), outcome="Corrected file received",
            )
        )  # fmt: skip

    flags = []
    for site in (s for s in portfolio.sites if s.role):
        starts = portfolio.edit_from if site.role == "retroactive_edits" else first
        if starts is not None:
            flags.append((site, PLANTED_ROLE_KRI[site.role], starts))
    # The flag nobody acts on: the last of a role planted more than once (its twin is attended).
    roles = [site.role for site, _, _ in flags]
    unattended = next(
        (i for i in range(len(flags) - 1, -1, -1) if roles.count(roles[i]) > 1), len(flags) - 1
    )
    attended, overdue_id = [], None
    for i, (site, kri, starts) in enumerate(flags):
        if i == unattended:
            continue
        opened = starts + dt.timedelta(days=OPEN_AFTER_DAYS[i % len(OPEN_AFTER_DAYS)])
        if opened > last:
            continue
        target = {"target_type": "SITE_FLAG", "site_id": site.site_id, "kri_id": kri,
                  "target_smo_id": site.smo_id}  # fmt: skip
        text = f"Discuss {kri.replace('_', ' ')} at site {site.site_id} with {site.smo_id}"
        action_id = next_id()
        overdue = overdue_id is None and opened + dt.timedelta(days=OVERDUE_DUE_AFTER_DAYS) < last
        if overdue:
            overdue_id = action_id
            action = Action(action_id, site.study_id, target, opened, "Central monitoring", text,
                            opened + dt.timedelta(days=OVERDUE_DUE_AFTER_DAYS))  # fmt: skip
        else:
            weeks = 1 + i % 3  # closed 1-3 weeks after it is picked up, always before it is due
            action = Action(
                action_id, site.study_id, target, opened, "Clinical trial manager", text,
                opened + dt.timedelta(days=DUE_AFTER_DAYS),
                closes=opened + dt.timedelta(days=7 * weeks + 3),
                outcome="Root cause agreed with the SMO; corrective plan in place",
                starts=opened + dt.timedelta(days=7),
            )  # fmt: skip
        actions.append(action)
        attended.append(
            {"smo_id": site.smo_id, "study_id": site.study_id, "site_id": site.site_id,
             "kri_id": kri, "action_id": action_id, "opened_date": opened.isoformat()}
        )  # fmt: skip

    qtl_actions = []
    for site in (s for s in portfolio.sites if s.role in PLANTED_QTLS):
        for k, qtl_id in enumerate(PLANTED_QTLS[site.role]):
            opened = first + dt.timedelta(days=6 + k)
            if opened > last:
                continue
            action_id = next_id()
            # The first evaluation concludes within two weeks; the second needs data from the
            # SMO and takes five (due in six), so it is still in progress in a short portfolio.
            weeks = (2, 5)[k % 2]
            actions.append(
                Action(
                    action_id, site.study_id, {"target_type": "QTL", "qtl_id": qtl_id}, opened,
                    "QTL review board", f"Evaluate the {qtl_id.replace('_', ' ')} exceedance",
                    opened + dt.timedelta(days=7 * weeks + 7),
                    closes=opened + dt.timedelta(days=7 * weeks),
                    outcome=("Driven by one site; site-level corrective action, no protocol "
                             "change", "Eligibility criteria clarified to all sites; no impact "
                             "on the primary analysis")[k % 2],
                    starts=opened + dt.timedelta(days=3),
                )
            )  # fmt: skip
            qtl_actions.append({"study_id": site.study_id, "qtl_id": qtl_id,
                                "action_id": action_id, "opened_date": opened.isoformat()})  # fmt: skip

    site, kri, _ = flags[unattended] if flags else (None, None, None)
    truth = {
        "sender": SPONSOR_ID,
        "unattended_flag": None
        if site is None
        else {
            "smo_id": site.smo_id,
            "study_id": site.study_id,
            "site_id": site.site_id,
            "kri_id": kri,
        },
        "overdue_action_id": overdue_id,
        "attended_flags": attended,
        "qtl_actions": qtl_actions,
    }
    return actions, truth


def write_actions(
    portfolio: Portfolio, inbox: Path, rejected: list[dict[str, Any]]
) -> tuple[list[tuple[Path, dt.date]], dict]:
    """One cumulative actions file per delivery date (CSV, then XLSX, alternating): each
    file's path and delivery date, and the ground truth."""
    actions, truth = plan_actions(portfolio, rejected)
    paths = []
    for week, as_of in enumerate(portfolio.delivery_dates):
        rows = [r for a in actions if (r := a.row(as_of)) is not None]
        dialect = CSV_DIALECT if week % 2 == 0 else XLSX_DIALECT
        path = inbox / SPONSOR_ID / dialect.file_name(FEED, as_of)
        writer = FeedWriter(dialect, FEED, path, f"Oversight actions as of {as_of.isoformat()}")
        writer.write(rows)
        writer.close()
        paths.append((path, as_of))
    truth["files"] = [p.name for p, _ in paths]
    return paths, truth
