"""Which inbox entries of an SMO with an `sdtm:` profile form one CDISC SDTM delivery.

An SDTM delivery is a set of domain files (ingest.sdtm), while the inbox sees files one by one.
The domain files of one delivery are those whose names match `sdtm.file_pattern` with the same
fields besides `{domain}` (e.g. the same `{delivery_date}`); a file whose name does not match is
recognised by its DOMAIN (RDOMAIN) column and joins the one set the named files form (or makes
a set of its own when there are several or none).

A set is ready only when DM, DS and SV are all there and settled and no file of the set is
still arriving (a `.part`, hidden or unsettled file with a name of the set); otherwise it is
left in the inbox, reported with the domains it waits for. Domain files the pipeline does not
read (AE, TS, ...) are not part of any set: each is rejected on its own, so nothing arrives and
quietly goes unused, and they never block the set beside them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ingest.inbox_entries import NOT_READY_SUFFIXES, InboxEntry
from ingest.sdtm import DOMAINS, REQUIRED_DOMAINS, SdtmSpec, domain_of_file, name_fields


@dataclass
class SdtmSet:
    """The domain files of one SDTM delivery, in domain order (DM, DS, SV, DV, SUPPDV)."""

    key: tuple[tuple[str, str], ...]  # the name fields the files share, besides {domain}
    members: list[tuple[str, InboxEntry]] = field(default_factory=list)  # (domain, entry)

    @property
    def name(self) -> str:
        """How the ledger and the stored folder name the set: `dm.xpt+ds.xpt+sv.xpt`."""
        return "+".join(entry.name for _, entry in self.members)

    @property
    def domains(self) -> list[str]:
        return [domain for domain, _ in self.members]

    def sort(self) -> None:
        order = {d: i for i, d in enumerate(DOMAINS)}
        self.members.sort(key=lambda m: (order.get(m[0], len(order)), m[1].name))


@dataclass
class SdtmGrouping:
    ready: list[SdtmSet] = field(default_factory=list)
    #: Entries left in the inbox for now, with why: (smo/file, why).
    waiting: list[tuple[str, str]] = field(default_factory=list)
    #: Domain files the pipeline does not read: (entry, domain), each rejected on its own.
    unused: list[tuple[InboxEntry, str]] = field(default_factory=list)
    #: Entries that are no domain file at all: they go the per-file way (and are rejected there).
    other: list[InboxEntry] = field(default_factory=list)


def _arriving_name(name: str) -> str | None:
    """The name a not-yet-ready entry will have (`.dm.xpt`, `dm.xpt.part` -> `dm.xpt`)."""
    stripped = name.lstrip(".")
    lowered = stripped.lower()
    for suffix in NOT_READY_SUFFIXES:
        if lowered.endswith(suffix):
            return stripped[: -len(suffix)]
    return stripped if stripped != name else None


def group_sdtm(
    entries: list[InboxEntry], spec: SdtmSpec, folder_names: list[str], scanned: set[str]
) -> SdtmGrouping:
    """Group an SMO's ready deliverable entries that match no feed into SDTM delivery sets.

    `folder_names` lists every name in the SMO folder and `scanned` the names this run
    handles (ready entries): the others are files of a set that are still arriving.
    """
    grouping = SdtmGrouping()
    sets: dict[tuple, SdtmSet] = {}
    by_column: list[tuple[str, InboxEntry]] = []
    for entry in entries:
        fields = name_fields(entry.name, spec)
        domain = domain_of_file(entry.path, spec)
        if domain is None:
            grouping.other.append(entry)
        elif domain not in DOMAINS:
            grouping.unused.append((entry, domain))
        elif fields is None or spec.domain_of_name(entry.name) is None:
            by_column.append((domain, entry))
        else:
            key = tuple(sorted(fields.items()))
            sets.setdefault(key, SdtmSet(key)).members.append((domain, entry))
    if by_column:
        named = [k for k in sets if k]
        key = named[0] if len(named) == 1 else ()
        sets.setdefault(key, SdtmSet(key)).members.extend(by_column)

    arriving: dict[tuple, list[str]] = {}
    for name in folder_names:
        if name in scanned:
            continue
        final = _arriving_name(name) or name
        fields = name_fields(final, spec)
        if fields is not None and spec.domain_of_name(final) in DOMAINS:
            arriving.setdefault(tuple(sorted(fields.items())), []).append(name)

    for key, sdtm_set in sets.items():
        sdtm_set.sort()
        missing = [d for d in REQUIRED_DOMAINS if d not in sdtm_set.domains]
        still = sorted(arriving.get(key, []))
        if not missing and not still:
            grouping.ready.append(sdtm_set)
            continue
        why = "part of an SDTM delivery (" + ", ".join(sdtm_set.domains) + ") that "
        if missing:
            why += f"lacks {', '.join(missing)} (DM, DS and SV are required)"
        if still:
            why += ("; " if missing else "") + f"waits for {', '.join(still)} still arriving"
        why += ": left in the inbox until the set is complete"
        grouping.waiting += [(f"{e.smo_id}/{e.name}", why) for _, e in sdtm_set.members]
    grouping.ready.sort(key=lambda s: (s.key, s.name))
    return grouping


def folder_names(folder: os.PathLike) -> list[str]:
    """Every name in an SMO folder (nothing is opened or followed)."""
    try:
        return os.listdir(folder)
    except OSError:
        return []
