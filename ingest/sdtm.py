"""CDISC SDTM as a source format (spec 2.3): a set of domain files -> canonical feeds.

A delivery is the set of domain files of one study export (DM, DS, SV, optional DV and
SUPPDV; `.xpt` or CSV). The adapter reads every domain, joins them into the text rows of the
canonical feeds (subjects = DM + DS (+ SV for a screening visit date), visits = SV, deviations
= DV (+ SUPPDV), a minimal site roster from DM when declared) and hands each to the gate's own
`check_rows`: the same header, parsing and contract checks as any SMO file, then the same
ledger, history and marts. Nothing is guessed: disposition terms the profile does not list are
reported (`sdtm.unknown_term`), direct identifiers (BRTHDTC) reject the delivery unless the
profile strips them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from expectations.contracts import Plausibility, roster_keys
from expectations.feeds import ALPHA3_TO_ALPHA2, FEEDS, SITE_STATUSES
from expectations.identifiers import direct_identifier_kind
from ingest.gate import (
    DELIVERY_DATE_GRACE,
    GateResult,
    Problem,
    RuleTotal,
    _null_values,
    check_rows,
    file_sha256,
    unforeseen_problem,
)
from ingest.profiles import (
    ISO_DATE,
    FeedProfile,
    FileOptions,
    ProfileError,
    _check_keys,
    _mapping,
    _pattern_regex,
    _strip_identifiers,
)
from ingest.readers import DeliveryFileError, RawFrame, read_delivery

log = logging.getLogger(__name__)

DOMAINS = ("DM", "DS", "SV", "DV", "SUPPDV")
REQUIRED_DOMAINS = ("DM", "DS", "SV")
#: Where a screened date may come from, tried in the declared order.
SCREENED_SOURCES = ("RFICDTC", "consent_milestone", "first_screening_visit")
RANDOMIZED_SOURCES = ("randomized_milestone", "RFSTDTC")
DISPOSITION_CLASSES = (
    "consent",
    "randomized",
    "screen_failure",
    "completed",
    "discontinued",
    "other",
)
#: Variables each domain must have for the adapter (beyond STUDYID and USUBJID).
NEEDED = {
    "DM": ("SITEID",),
    "DS": ("DSCAT", "DSDECOD", "DSSTDTC"),
    "SV": ("VISITNUM", "VISIT", "SVSTDTC"),
    "DV": ("DVSEQ", "DVCAT", "DVSTDTC"),
    "SUPPDV": ("IDVAR", "IDVARVAL", "QNAM", "QVAL"),
}


@dataclass(frozen=True)
class SdtmSpec:
    file_pattern: str
    file: FileOptions
    partial_dates: str
    smo_id: str
    screened_date: tuple[str, ...]
    screening_visit: str  # regex on SV.VISIT
    randomized_date: tuple[str, ...]
    screen_failure: str  # DSDECOD or ARMCD
    screen_failure_armcd: frozenset[str]
    categories: frozenset[str]  # DSCAT values whose DSDECOD terms are classified
    terms: dict[str, str]  # DSDECOD -> disposition class
    term_map: dict[str, str]  # renamed term -> the term the map knows
    demographics: tuple[str, ...]
    #: DM demographic variable (SEX, RACE, ETHNIC) -> the sender's value -> CDISC term.
    demographic_codes: dict[str, dict[str, str]]
    strip_identifiers: frozenset[str]
    sites: str  # "dm" (derive a minimal roster) or "smo" (the SMO's sites feed)
    site_status: str
    importance_from: str | None  # DVCAT, DVDECOD or SUPPDV
    importance_map: dict[str, str]
    importance_qnam: str | None
    #: SV variables whose values, joined with "/", identify a visit (default VISITNUM alone).
    visit_id: tuple[str, ...] = ("VISITNUM",)
    _regex: Any = field(repr=False, compare=False, default=None)

    def domain_of_name(self, name: str) -> str | None:
        m = self._regex.fullmatch(name)
        return None if m is None or not m.groupdict().get("domain") else m["domain"].upper()

    def delivery_date_of(self, name: str) -> str | None:
        m = self._regex.fullmatch(name)
        return None if m is None else m.groupdict().get("delivery_date")


SPEC_KEYS = {
    "file_pattern",
    "subjects",
    "disposition",
    "deviations",
    "sites",
    "strip_identifiers",
    "visits",
}


def _list(value: Any, path: Path, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(path, where, "expected a list of texts")
    return value


def _demographic_codes(
    raw: Any, demographics: tuple[str, ...], path: Path, where: str
) -> dict[str, dict[str, str]]:
    """A sender whose DM does not hold CDISC terms (SEX "Female") maps its values here, per
    variable; targets must be terms of the subjects contract. Unmapped values stay as written
    and fail value.enum with the value quoted: never guessed."""
    codes: dict[str, dict[str, str]] = {}
    for variable, table in _mapping(raw, path, where).items():
        if variable not in ("SEX", "RACE", "ETHNIC"):
            raise ProfileError(path, f"{where}.{variable}", "codes map SEX, RACE or ETHNIC values")
        if variable not in demographics:
            raise ProfileError(path, f"{where}.{variable}",
                               f"{variable} is not listed under subjects.demographics")  # fmt: skip
        allowed = FEEDS["subjects"].column(variable.lower()).enum or ()
        table = _mapping(table, path, f"{where}.{variable}")
        for value, term in table.items():
            if term not in allowed:
                raise ProfileError(path, f"{where}.{variable}.{value}",
                                   f"'{term}' is not one of {', '.join(allowed)}")  # fmt: skip
        codes[variable.lower()] = {str(k): str(v) for k, v in table.items()}
    return codes


def parse_sdtm_spec(
    raw: dict, file: FileOptions, partial_dates: str, smo_id: str, path: Path
) -> SdtmSpec:
    where = "sdtm"
    _check_keys(raw, SPEC_KEYS, path, where)
    pattern = raw.get("file_pattern", "{domain}.xpt")
    if not isinstance(pattern, str):
        raise ProfileError(path, f"{where}.file_pattern", "expected a file name pattern")
    regex = _pattern_regex(pattern, f"{where}.file_pattern", path)
    if file.type not in ("xport", "csv"):
        raise ProfileError(path, "file.type", "an SDTM source is xport (.xpt) or csv")
    subjects = _mapping(raw.get("subjects"), path, f"{where}.subjects")
    _check_keys(
        subjects,
        {"screened_date", "screening_visit", "randomized_date", "screen_failure",
         "screen_failure_armcd", "demographics", "codes"},
        path, f"{where}.subjects",
    )  # fmt: skip
    screened = tuple(_list(subjects.get("screened_date", list(SCREENED_SOURCES)), path,
                           f"{where}.subjects.screened_date"))  # fmt: skip
    for source in screened:
        if source not in SCREENED_SOURCES:
            raise ProfileError(path, f"{where}.subjects.screened_date",
                               f"'{source}' is not one of {', '.join(SCREENED_SOURCES)}")  # fmt: skip
    randomized = tuple(_list(subjects.get("randomized_date", ["randomized_milestone"]), path,
                             f"{where}.subjects.randomized_date"))  # fmt: skip
    for source in randomized:
        if source not in RANDOMIZED_SOURCES:
            raise ProfileError(path, f"{where}.subjects.randomized_date",
                               f"'{source}' is not one of {', '.join(RANDOMIZED_SOURCES)}")  # fmt: skip
    screen_failure = subjects.get("screen_failure", "DSDECOD")
    if screen_failure not in ("DSDECOD", "ARMCD"):
        raise ProfileError(path, f"{where}.subjects.screen_failure", "must be DSDECOD or ARMCD")
    armcd = frozenset(_list(subjects.get("screen_failure_armcd", ["SCRNFAIL"]), path,
                            f"{where}.subjects.screen_failure_armcd"))  # fmt: skip
    demographics = tuple(_list(subjects.get("demographics", []), path,
                               f"{where}.subjects.demographics"))  # fmt: skip
    for variable in demographics:
        if variable not in ("SEX", "AGE", "RACE", "ETHNIC"):
            raise ProfileError(path, f"{where}.subjects.demographics.{variable}",
                               "only SEX, AGE, RACE and ETHNIC are carried onto subjects")  # fmt: skip
    demographic_codes = _demographic_codes(subjects.get("codes"), demographics, path,
                                           f"{where}.subjects.codes")  # fmt: skip

    disposition = _mapping(raw.get("disposition"), path, f"{where}.disposition")
    _check_keys(disposition, {"categories", "term_map", *DISPOSITION_CLASSES}, path,
                f"{where}.disposition")  # fmt: skip
    terms: dict[str, str] = {}
    for cls in DISPOSITION_CLASSES:
        for term in _list(disposition.get(cls), path, f"{where}.disposition.{cls}"):
            if term in terms:
                raise ProfileError(path, f"{where}.disposition.{cls}",
                                   f"'{term}' is already listed under {terms[term]}")  # fmt: skip
            terms[term] = cls
    if not any(c == "completed" for c in terms.values()):
        raise ProfileError(path, f"{where}.disposition.completed",
                           "required: the DSDECOD terms of a completed study")  # fmt: skip
    term_map = {str(k): str(v) for k, v in
                _mapping(disposition.get("term_map"), path, f"{where}.disposition.term_map").items()}  # fmt: skip
    for old, new in term_map.items():
        if new not in terms:
            raise ProfileError(path, f"{where}.disposition.term_map.{old}",
                               f"'{new}' is not a term listed under a disposition class")  # fmt: skip
    categories = frozenset(_list(disposition.get("categories", ["DISPOSITION EVENT", "PROTOCOL MILESTONE"]),
                                 path, f"{where}.disposition.categories"))  # fmt: skip

    deviations = _mapping(raw.get("deviations"), path, f"{where}.deviations")
    _check_keys(deviations, {"importance_from", "importance", "qnam"}, path, f"{where}.deviations")
    importance_from = deviations.get("importance_from")
    if importance_from not in (None, "DVCAT", "DVDECOD", "SUPPDV"):
        raise ProfileError(path, f"{where}.deviations.importance_from",
                           "must be DVCAT, DVDECOD or SUPPDV")  # fmt: skip
    importance = {str(k): str(v) for k, v in
                  _mapping(deviations.get("importance"), path, f"{where}.deviations.importance").items()}  # fmt: skip
    for key, value in importance.items():
        if value not in ("IMPORTANT", "NON_IMPORTANT"):
            raise ProfileError(path, f"{where}.deviations.importance.{key}",
                               f"'{value}' is not IMPORTANT or NON_IMPORTANT")  # fmt: skip
    qnam = deviations.get("qnam")
    if importance_from == "SUPPDV" and not qnam:
        raise ProfileError(path, f"{where}.deviations.qnam",
                           "required with importance_from: SUPPDV (the QNAM of the qualifier)")  # fmt: skip
    if importance_from and not importance:
        raise ProfileError(path, f"{where}.deviations.importance",
                           "required: which values mean IMPORTANT and NON_IMPORTANT")  # fmt: skip

    screening_visit = str(subjects.get("screening_visit", "^SCREENING"))
    try:
        re.compile(screening_visit)
        pl.Series(["SCREENING 1"]).str.contains(screening_visit)
    except (re.error, pl.exceptions.ComputeError) as exc:
        raise ProfileError(
            path, f"{where}.subjects.screening_visit", f"not a valid regex ({exc})"
        ) from None
    visits = _mapping(raw.get("visits"), path, f"{where}.visits")
    _check_keys(visits, {"visit_id"}, path, f"{where}.visits")
    visit_id = tuple(_list(visits.get("visit_id", ["VISITNUM"]), path, f"{where}.visits.visit_id"))
    if not visit_id:
        raise ProfileError(path, f"{where}.visits.visit_id", "at least one SV variable")
    sites = raw.get("sites", "smo")
    if isinstance(sites, dict):
        _check_keys(sites, {"from", "status"}, path, f"{where}.sites")
        site_status = sites.get("status", "ENROLLING")
        sites = sites.get("from", "dm")
    else:
        site_status = "ENROLLING"
    if sites not in ("dm", "smo"):
        raise ProfileError(path, f"{where}.sites", "must be dm (a roster derived from DM) or smo")
    if site_status not in SITE_STATUSES:
        raise ProfileError(path, f"{where}.sites.status", f"'{site_status}' is not a site status")
    return SdtmSpec(
        file_pattern=pattern,
        file=file,
        partial_dates=partial_dates,
        smo_id=smo_id,
        screened_date=screened,
        screening_visit=screening_visit,
        randomized_date=randomized,
        screen_failure=screen_failure,
        screen_failure_armcd=armcd,
        categories=categories,
        terms=terms,
        term_map=term_map,
        demographics=demographics,
        demographic_codes=demographic_codes,
        strip_identifiers=_strip_identifiers(raw.get("strip_identifiers"), path, where),
        sites=sites,
        site_status=site_status,
        importance_from=importance_from,
        importance_map=importance,
        importance_qnam=qnam,
        visit_id=visit_id,
        _regex=regex,
    )


# -- the adapter -------------------------------------------------------------------------------


@dataclass
class Domain:
    name: str
    path: Path
    raw: RawFrame

    def rows(self) -> pl.DataFrame:
        """The domain's text with the file row number of each record (`_row`)."""
        return self.raw.frame.with_columns(self.raw.row_numbers().alias("_row"))


@dataclass
class SdtmDelivery:
    """The outcome of one SDTM delivery: one gate result per canonical feed it produces."""

    paths: list[Path]
    domains: dict[str, Path]
    results: list[GateResult]
    #: Problems of the delivery as a whole (a file that is no domain, a missing domain).
    problems: list[Problem] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.problems and all(r.accepted for r in self.results)

    def reports(self, profile) -> list[GateResult]:
        """One result per feed, led by one for the delivery as a whole when it has problems."""
        if not self.problems:
            return list(self.results)
        whole = GateResult(
            path=self.paths[0] if self.paths else Path("."),
            smo_id=profile.smo_id,
            profile_version=profile.version,
            sha256="",
            size_bytes=sum(p.stat().st_size for p in self.paths if p.is_file()),
        )
        for problem in self.problems:
            whole.add(problem)
        return [whole, *self.results]


def _date(expr: pl.Expr) -> pl.Expr:
    """The date part of an ISO 8601 date-time (`2014-07-02T11:45` -> `2014-07-02`)."""
    return expr.str.split("T").list.first()


def check_sdtm_delivery(
    paths: list[Path],
    profile,
    *,
    received_at: dt.datetime,
    roster: frozenset[str] | None,
    plausibility: Plausibility | None = None,
) -> SdtmDelivery:
    """Check the domain files of one SDTM delivery: one gate result per canonical feed.

    As with `check_delivery`, a failure nobody foresaw rejects the delivery (`file.unreadable`,
    with the exception's type and text) instead of stopping the caller; the traceback is logged.
    """
    try:
        return _check_sdtm_delivery(
            paths, profile, received_at=received_at, roster=roster, plausibility=plausibility
        )
    except Exception as exc:  # noqa: BLE001 - no delivery may stop the run
        log.exception("SDTM adapter failed on %s", [str(p) for p in paths])
        problem = unforeseen_problem("The SDTM delivery could not be checked", exc)
        return SdtmDelivery(paths=list(paths), domains={}, results=[], problems=[problem])


def _check_sdtm_delivery(
    paths: list[Path],
    profile,
    *,
    received_at: dt.datetime,
    roster: frozenset[str] | None,
    plausibility: Plausibility | None = None,
) -> SdtmDelivery:
    spec: SdtmSpec = profile.sdtm
    delivery = SdtmDelivery(paths=list(paths), domains={}, results=[])
    domains: dict[str, Domain] = {}
    file_dates = set()
    for path in paths:
        try:
            raw = read_delivery(path, _file_options(spec, path))
        except DeliveryFileError as exc:
            delivery.problems.extend(
                Problem(f.rule, f"{path.name}: {f.message}", f.column, f.row, f.value)
                for f in exc.findings
            )
            continue
        name = spec.domain_of_name(path.name) or _domain_of_rows(raw.frame)
        if name not in DOMAINS:
            delivery.problems.append(
                Problem(
                    "sdtm.domain_unrecognized",
                    f"'{path.name}' is not one of the domains {', '.join(DOMAINS)} (by its name, "
                    f"pattern {spec.file_pattern}, or its DOMAIN column).",
                    value=name,
                )
            )
            continue
        if name in domains:
            delivery.problems.append(
                Problem(
                    "sdtm.domain_missing",
                    f"Two files hold domain {name}: {domains[name].path.name} and {path.name}.",
                )
            )
            continue
        if date := spec.delivery_date_of(path.name):
            file_dates.add(date)
        domains[name] = Domain(name, path, _null_values(raw, spec.file))
    delivery.domains = {n: d.path for n, d in domains.items()}
    for name in REQUIRED_DOMAINS:
        if name not in domains:
            delivery.problems.append(
                Problem(
                    "sdtm.domain_missing",
                    f"The delivery has no {name} domain (files: "
                    f"{', '.join(p.name for p in paths)}).",
                )
            )
    if "SUPPDV" in domains and "DV" not in domains:
        delivery.problems.append(
            Problem("sdtm.domain_missing", "SUPPDV is given without the DV domain it qualifies.")
        )
    for domain in domains.values():
        _check_variables(domain, spec, delivery)
    if delivery.problems:
        return delivery
    delivery_date = _delivery_date(file_dates, received_at, delivery)
    if delivery_date is None:
        return delivery

    stripped = {
        name: [c for c in d.raw.frame.columns if c in spec.strip_identifiers]
        for name, d in domains.items()
    }
    for name in domains:
        domains[name] = _strip(domains[name], spec)

    def result(feed: str, primary: str, used: list[str]) -> GateResult:
        members = [domains[d] for d in used if d in domains]
        digest = hashlib.sha256()
        for member in members:
            digest.update(f"{member.name}:{file_sha256(member.path)}\n".encode())
        res = GateResult(
            path=domains[primary].path,
            smo_id=spec.smo_id,
            profile_version=profile.version,
            sha256=digest.hexdigest(),
            size_bytes=sum(m.path.stat().st_size for m in members),
            feed=feed,
            delivery_date=delivery_date,
            row_count=domains[primary].raw.frame.height,
            file_columns=list(domains[primary].raw.frame.columns),
        )
        res.stripped_columns = [c for m in members for c in stripped[m.name]]
        return res

    context = dict(roster=roster, plausibility=plausibility)
    if spec.sites == "dm":
        sites = result("sites", "DM", ["DM"])
        check_rows(_sites_rows(domains["DM"], spec), _feed_profile("sites", spec), sites, roster=None,
                   plausibility=plausibility)  # fmt: skip
        delivery.results.append(sites)
        if sites.accepted and sites.frame is not None:
            keys = roster_keys(sites.frame["study_id"], sites.frame["site_id"])
            context["roster"] = keys | (roster or frozenset())
    subjects = result("subjects", "DM", ["DM", "DS", "SV"])
    rows = _subjects_rows(domains, spec, subjects)
    if rows is not None:
        check_rows(rows, _feed_profile("subjects", spec), subjects, **context)
    delivery.results.append(subjects)
    visits = result("visits", "SV", ["SV"])
    check_rows(_visits_rows(domains["SV"], spec), _feed_profile("visits", spec), visits, **context)
    delivery.results.append(visits)
    if "DV" in domains:
        deviations = result("deviations", "DV", ["DV", "SUPPDV", "DM"])
        rows = _deviations_rows(domains, spec, deviations)
        if rows is not None:
            check_rows(rows, _feed_profile("deviations", spec), deviations, **context)
        delivery.results.append(deviations)
    return delivery


def _file_options(spec: SdtmSpec, path: Path) -> FileOptions:
    """`.xpt` files are SAS transport, anything else is CSV with the profile's options."""
    if path.suffix.lower() == ".xpt":
        return dataclasses.replace(spec.file, type="xport")
    if spec.file.type == "xport":
        return dataclasses.replace(spec.file, type="csv")
    return spec.file


def domain_of_file(path: Path, spec: SdtmSpec) -> str | None:
    """The domain a file holds: by its name (`file_pattern`), else by its DOMAIN (RDOMAIN)
    column; None when neither says, or the file cannot be read (the inbox then treats it as
    a file of no delivery)."""
    name = spec.domain_of_name(path.name)
    if name is not None:
        return name
    try:
        return _domain_of_rows(read_delivery(path, _file_options(spec, path)).frame)
    except Exception:  # noqa: BLE001 - unreadable or not a table: not recognisably a domain
        return None


def name_fields(path_name: str, spec: SdtmSpec) -> dict[str, str] | None:
    """The fields of a domain file's name other than {domain} (e.g. its {delivery_date}): the
    domain files of one delivery share them. None when the name does not match the pattern."""
    m = spec._regex.fullmatch(path_name)
    if m is None:
        return None
    return {k: v for k, v in m.groupdict().items() if k != "domain" and v is not None}


def storage_profile(spec: SdtmSpec, path: Path) -> FeedProfile:
    """How a domain file is stored (its format, the identifiers stripped from the kept copy)."""
    return dataclasses.replace(
        _feed_profile("subjects", spec),
        file=_file_options(spec, path),
        strip_identifiers=spec.strip_identifiers,
    )


def _domain_of_rows(frame: pl.DataFrame) -> str | None:
    if "DOMAIN" in frame.columns:
        values = frame.get_column("DOMAIN").drop_nulls().unique().to_list()
        return values[0].upper() if len(values) == 1 else None
    if "RDOMAIN" in frame.columns:  # a supplemental qualifier data set
        values = frame.get_column("RDOMAIN").drop_nulls().unique().to_list()
        return f"SUPP{values[0].upper()}" if len(values) == 1 else None
    return None


def _check_variables(domain: Domain, spec: SdtmSpec, delivery: SdtmDelivery) -> None:
    columns = domain.raw.frame.columns
    for column in columns:
        kind = direct_identifier_kind(column)
        if kind is not None and column not in spec.strip_identifiers:
            delivery.problems.append(
                Problem(
                    "column.direct_identifier",
                    f"{domain.name} variable '{column}' is a direct identifier ({kind}): the "
                    "export must leave it out, or the profile lists it under "
                    "sdtm.strip_identifiers to discard it on read.",
                    column=column,
                )
            )
    needed = ("STUDYID", "USUBJID", *NEEDED[domain.name])
    if domain.name == "SV":
        needed += tuple(v for v in spec.visit_id if v not in needed)
    if domain.name == "SUPPDV":
        needed = ("STUDYID", "USUBJID", *NEEDED["SUPPDV"])
    for variable in needed:
        if variable not in columns:
            delivery.problems.append(
                Problem(
                    "column.missing",
                    f"{domain.name} ({domain.path.name}) has no variable {variable}. "
                    f"Variables: {columns}.",
                    column=variable,
                )
            )


def _delivery_date(dates: set[str], received_at: dt.datetime, delivery: SdtmDelivery):
    if len(dates) > 1:
        delivery.problems.append(
            Problem(
                "file.name_unrecognized",
                f"The domain files carry different delivery dates: {sorted(dates)}.",
            )  # fmt: skip
        )
        return None
    if not dates:
        return received_at.date()
    raw = dates.pop()
    for fmt in ("%Y%m%d", "%Y-%m-%d"):
        try:
            day = dt.datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
        if day > received_at.date() + DELIVERY_DATE_GRACE:
            delivery.problems.append(
                Problem(
                    "file.delivery_date_future",
                    f"The delivery date in the file names ({day}) is after the files arrived "
                    f"({received_at.date()}); a snapshot cannot be dated in the future.",
                    value=raw,
                )
            )
            return None
        return day
    delivery.problems.append(
        Problem("file.name_unrecognized", f"'{raw}' in the file names is not a date.")
    )
    return None


def _strip(domain: Domain, spec: SdtmSpec) -> Domain:
    present = [c for c in domain.raw.frame.columns if c in spec.strip_identifiers]
    if not present:
        return domain
    raw = dataclasses.replace(domain.raw, frame=domain.raw.frame.drop(present))
    return Domain(domain.name, domain.path, raw)


def _feed_profile(feed: str, spec: SdtmSpec) -> FeedProfile:
    """The canonical rows the adapter builds are read like a CSV in canonical columns."""
    return FeedProfile(
        feed=feed,
        file_pattern=spec.file_pattern,
        scope="all_studies",
        file=FileOptions(type="csv"),
        columns={},
        date_formats={c: ISO_DATE for c in FEEDS[feed].names_of("date")},
        codes=spec.demographic_codes if feed == "subjects" else {},
        constants={},
        drop=frozenset(),
        partial_dates=spec.partial_dates,  # type: ignore[arg-type]
        _regex=spec._regex,
    )


def _text_frame(frame: pl.DataFrame, rows: pl.Series) -> RawFrame:
    return RawFrame(frame.drop("_row", strict=False), first_data_row=1, rows=rows)


def _sites_rows(dm: Domain, spec: SdtmSpec) -> RawFrame:
    rows = dm.rows()
    has = set(rows.columns)
    country = (
        pl.col("COUNTRY").replace_strict(ALPHA3_TO_ALPHA2, default=pl.col("COUNTRY"))
        if "COUNTRY" in has
        else pl.lit(None, pl.Utf8)
    )
    investigator = pl.col("INVNAM") if "INVNAM" in has else pl.lit(None, pl.Utf8)
    sites = (
        rows.group_by("STUDYID", "SITEID", maintain_order=True)
        .agg(
            country.first().alias("country"),
            investigator.drop_nulls().first().alias("principal_investigator"),
            pl.col("_row").first(),
        )
        .select(
            pl.lit(spec.smo_id).alias("smo_id"),
            pl.col("STUDYID").alias("study_id"),
            pl.col("SITEID").alias("site_id"),
            pl.format("Site {}", pl.col("SITEID")).alias("site_name"),
            "country",
            pl.lit(spec.site_status).alias("status"),
            "principal_investigator",
            "_row",
        )
    )
    return _text_frame(sites, sites["_row"])


def _classified_ds(ds: Domain, spec: SdtmSpec, result: GateResult) -> pl.DataFrame | None:
    """DS rows of the classified categories with their disposition class; unknown terms are
    reported (sdtm.unknown_term) and make the subjects feed fail."""
    rows = ds.rows().filter(pl.col("DSCAT").is_in(list(spec.categories)))
    rows = rows.with_columns(
        pl.col("DSDECOD").replace(spec.term_map).alias("term"),
        _date(pl.col("DSSTDTC")).alias("date"),
    ).with_columns(
        pl.col("term").replace_strict(spec.terms, default=None, return_dtype=pl.Utf8).alias("cls")
    )
    unknown = rows.filter(pl.col("cls").is_null())
    if unknown.height:
        known = ", ".join(sorted(spec.terms))
        for row in unknown.head(20).iter_rows(named=True):
            result.problems.append(
                Problem(
                    "sdtm.unknown_term",
                    f"DS row {row['_row']} ({ds.path.name}): DSDECOD '{row['DSDECOD']}' "
                    f"(DSCAT {row['DSCAT']}) is not a term the profile classifies. Known: "
                    f"{known}. A renamed term goes under disposition.term_map.",
                    column="DSDECOD",
                    row=row["_row"],
                    value=row["DSDECOD"],
                )
            )
        result.totals.append(RuleTotal("sdtm.unknown_term", "DSDECOD", unknown.height))
        return None
    return rows


def _subjects_rows(domains: dict[str, Domain], spec: SdtmSpec, result: GateResult):
    dm = domains["DM"].rows()
    ds = _classified_ds(domains["DS"], spec, result)
    if ds is None:
        return None
    sv = domains["SV"].rows()

    def first_of(cls: str, name: str) -> pl.DataFrame:
        return (
            ds.filter(pl.col("cls") == cls)
            .group_by("USUBJID")
            .agg(pl.col("date").min().alias(name))
        )

    consent = first_of("consent", "consent_milestone")
    randomized = first_of("randomized", "randomized_milestone")
    screen_fail = (
        ds.filter(pl.col("cls") == "screen_failure")
        .sort("date")
        .group_by("USUBJID", maintain_order=True)
        .agg(
            pl.col("date").first().alias("sf_date"),
            (pl.col("DSTERM").first() if "DSTERM" in ds.columns else pl.lit(None, pl.Utf8)).alias(
                "sf_reason"
            ),
        )  # fmt: skip
    )
    end = (
        ds.filter(pl.col("cls").is_in(["completed", "discontinued"]))
        .sort("date")
        .group_by("USUBJID", maintain_order=True)
        .agg(
            pl.col("cls").last().alias("end_cls"),
            pl.col("date").last().alias("end_date"),
            pl.col("term").last().alias("end_term"),
        )  # fmt: skip
    )
    screening = (
        sv.filter(pl.col("VISIT").str.contains(spec.screening_visit))
        .group_by("USUBJID")
        .agg(_date(pl.col("SVSTDTC")).min().alias("first_screening_visit"))
    )
    last_visit = sv.group_by("USUBJID").agg(_date(pl.col("SVSTDTC")).max().alias("last_visit"))
    joined = dm
    for part in (consent, randomized, screen_fail, end, screening, last_visit):
        joined = joined.join(part, on="USUBJID", how="left")
    has = set(dm.columns)
    rficdtc = _date(pl.col("RFICDTC")) if "RFICDTC" in has else pl.lit(None, pl.Utf8)
    joined = joined.with_columns(rficdtc.alias("RFICDTC_date"))
    screened = {"RFICDTC": "RFICDTC_date", "consent_milestone": "consent_milestone",
                "first_screening_visit": "first_screening_visit"}  # fmt: skip
    screened_expr = pl.coalesce([pl.col(screened[s]) for s in spec.screened_date])
    source_expr = pl.lit(None, pl.Utf8)
    for s in reversed(spec.screened_date):
        source_expr = (
            pl.when(pl.col(screened[s]).is_not_null()).then(pl.lit(s)).otherwise(source_expr)
        )
    if spec.screen_failure == "ARMCD":
        failed = (
            pl.col("ARMCD").is_in(list(spec.screen_failure_armcd))
            if "ARMCD" in has
            else pl.lit(False)
        )
        sf_date = pl.when(failed).then(pl.coalesce("sf_date", "last_visit"))
    else:
        failed = pl.col("sf_date").is_not_null()
        sf_date = pl.col("sf_date")
    rf = _date(pl.col("RFSTDTC")) if "RFSTDTC" in has else pl.lit(None, pl.Utf8)
    randomized_parts = []
    for s in spec.randomized_date:
        randomized_parts.append(pl.col("randomized_milestone") if s == "randomized_milestone"
                                else pl.when(failed.not_()).then(rf))  # fmt: skip
    demographics = [
        (pl.col(v) if v in has else pl.lit(None, pl.Utf8)).alias(v.lower())
        for v in spec.demographics
    ]
    rows = joined.select(
        pl.lit(spec.smo_id).alias("smo_id"),
        pl.col("STUDYID").alias("study_id"),
        pl.col("SITEID").alias("site_id"),
        pl.col("USUBJID").alias("subject_id"),
        screened_expr.alias("screened_date"),
        source_expr.alias("screened_date_source"),
        pl.coalesce("RFICDTC_date", "consent_milestone").alias("consent_date"),
        sf_date.alias("screen_failed_date"),
        pl.when(failed).then(pl.col("sf_reason")).alias("screen_fail_reason"),
        pl.coalesce(randomized_parts).alias("randomized_date"),
        pl.when(pl.col("end_cls") == "discontinued").then(pl.col("end_date")).alias("discontinued_date"),
        pl.when(pl.col("end_cls") == "discontinued").then(pl.col("end_term")).alias("discontinuation_reason"),
        pl.when(pl.col("end_cls") == "completed").then(pl.col("end_date")).alias("completed_date"),
        *demographics,
        "_row",
    )  # fmt: skip
    return _text_frame(rows, rows["_row"])


def _visits_rows(sv: Domain, spec: SdtmSpec) -> RawFrame:
    rows = sv.rows().select(
        pl.lit(spec.smo_id).alias("smo_id"),
        pl.col("STUDYID").alias("study_id"),
        pl.col("USUBJID").alias("subject_id"),
        pl.concat_str([pl.col(v) for v in spec.visit_id], separator="/").alias("visit_id"),
        pl.col("VISIT").alias("visit_name"),
        pl.lit("COMPLETED").alias("status"),
        _date(pl.col("SVSTDTC")).alias("actual_date"),
        "_row",
    )
    return _text_frame(rows, rows["_row"])


def _deviations_rows(domains: dict[str, Domain], spec: SdtmSpec, result: GateResult):
    dv = domains["DV"].rows()
    sites = domains["DM"].rows().select("USUBJID", pl.col("SITEID").alias("site_id"))
    dv = dv.join(sites, on="USUBJID", how="left", maintain_order="left")
    if spec.importance_from == "SUPPDV":
        if "SUPPDV" not in domains:
            result.add(Problem("sdtm.domain_missing",
                               "The profile takes deviation importance from SUPPDV, which this "
                               "delivery does not include."))  # fmt: skip
            return None
        supp = (
            domains["SUPPDV"].rows()
            .filter((pl.col("QNAM") == spec.importance_qnam) & (pl.col("IDVAR") == "DVSEQ"))
            .select("USUBJID", pl.col("IDVARVAL").alias("DVSEQ"), pl.col("QVAL").alias("importance"))
        )  # fmt: skip
        dv = dv.join(supp, on=["USUBJID", "DVSEQ"], how="left", maintain_order="left")
    elif spec.importance_from in ("DVCAT", "DVDECOD") and spec.importance_from in dv.columns:
        dv = dv.with_columns(pl.col(spec.importance_from).alias("importance"))
    else:
        dv = dv.with_columns(pl.lit(None, pl.Utf8).alias("importance"))
    # An unmapped importance stays as written and fails value.enum with its value quoted.
    severity = pl.col("importance").replace(spec.importance_map)
    term = pl.col("DVTERM") if "DVTERM" in dv.columns else pl.col("DVDECOD") if "DVDECOD" in dv.columns else pl.lit(None, pl.Utf8)  # fmt: skip
    rows = dv.select(
        pl.lit(spec.smo_id).alias("smo_id"),
        pl.col("STUDYID").alias("study_id"),
        pl.format("{}/{}", "USUBJID", "DVSEQ").alias("deviation_id"),
        "site_id",
        pl.col("DVCAT").alias("category"),
        severity.alias("severity"),
        _date(pl.col("DVSTDTC")).alias("occurred_date"),
        pl.col("USUBJID").alias("subject_id"),
        term.alias("term"),
        "_row",
    )
    return _text_frame(rows, rows["_row"])
