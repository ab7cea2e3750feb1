"""What the delivery gate returns (`GateResult`, its `Problem`s and per-rule totals), apart from
the gate itself: the ledger, the inbox scan and retraction use these types without importing
pandera and polars, so loading the Dagster definitions stays light. `ingest.gate` re-exports them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Problem:
    """One reason a file is refused. `row` is the row number as a spreadsheet shows it."""

    rule: str
    message: str
    column: str | None = None
    row: int | None = None
    value: str | None = None
    #: The file the row is in, when a result covers several files (an SDTM delivery set).
    file: str | None = None


@dataclass(frozen=True)
class RuleTotal:
    rule: str
    column: str | None
    count: int


@dataclass
class GateResult:
    path: Path
    smo_id: str
    profile_version: str
    sha256: str
    size_bytes: int
    feed: str | None = None
    study_id: str | None = None  # the file's study when the feed is study-scoped
    delivery_date: dt.date | None = None
    studies: list[str] = field(default_factory=list)
    row_count: int = 0
    frame: pl.DataFrame | None = None  # canonical columns + _source_row; only when accepted
    problems: list[Problem] = field(default_factory=list)  # capped per rule
    totals: list[RuleTotal] = field(default_factory=list)  # complete counts per rule
    #: The file's columns as read; None when the file could not be read.
    file_columns: list[str] | None = None
    #: Identifier columns the profile strips (`strip_identifiers`) that were in the file; they
    #: were removed right after reading, before anything else saw the frame.
    stripped_columns: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.totals

    @property
    def error_count(self) -> int:
        return sum(t.count for t in self.totals)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        for i, total in enumerate(self.totals):
            if (total.rule, total.column) == (problem.rule, problem.column):
                self.totals[i] = RuleTotal(total.rule, total.column, total.count + 1)
                return
        self.totals.append(RuleTotal(problem.rule, problem.column, 1))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
