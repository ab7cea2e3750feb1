"""Flatten ClinicalTrials.gov API v2 study records into tables (polars DataFrames).

Input: any iterable of study records (the `GET /studies/{nctId}` shape, from the API, a replay
directory or a website export). Output: `RegistryTables` with five frames, one row per:

- ``studies``: study. nct_id, brief_title, overall_status, phases (list) and phases_joined
  (``PHASE2|PHASE3``, as the website's CSV writes it), study_type, lead sponsor name and class,
  enrollment count and type, start / primary completion / completion dates each with
  ``_precision`` (day, month, year) and ``_type`` (ACTUAL, ESTIMATED), last_update_post_date,
  first_post_date, has_results, location_count (0 when the record lists no locations).
- ``locations``: location row of a study, in registry order (seq from 1). facility_raw and
  facility_normalised (casefolded, accents stripped, punctuation removed, whitespace collapsed),
  city, state, zip (always a string), country, status (present only while recruiting),
  lat / lon (geoPoint: the city centroid, not the facility), and is_repeat (an identical
  facility/city/state/zip/country row appeared earlier in the same study; registry records do
  repeat rows).
- ``conditions``: reported condition (kind ``reported``) or MeSH term of
  derivedSection.conditionBrowseModule.meshes (kind ``mesh``). condition is the reported text or
  the MeSH term; mesh_id is normalised to the unpadded form (D000006937 -> D006937), mesh_id_raw
  keeps what the record said.
- ``interventions``: nct_id, seq, type, name.
- ``sponsors``: nct_id, role (lead / collaborator), seq, name, class.

Partial dates (``YYYY-MM``, ``YYYY``) become the first day of the period plus a precision.
Unknown keys are ignored, missing modules give nulls, a value of the wrong JSON type is treated as
missing. Records without an nctId are skipped and counted; when an nctId appears more than once,
the record with the latest last_update_post_date wins (the later one on ties) and the others are
counted as duplicates.

Speed: one pass of plain Python appends into column lists, turned into a DataFrame every
`CHUNK_RECORDS` records (the frames are concatenated without rechunking, so tables may hold
several chunks), with the per-string work (dates, facility names, MeSH ids) memoised. About 15-18k
records/second on the 2-core reference machine (`python -m bench.registry_flatten`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import polars as pl

STUDIES_SCHEMA: dict[str, pl.DataType] = {
    "nct_id": pl.String(),
    "brief_title": pl.String(),
    "overall_status": pl.String(),
    "phases": pl.List(pl.String()),
    "phases_joined": pl.String(),
    "study_type": pl.String(),
    "lead_sponsor_name": pl.String(),
    "lead_sponsor_class": pl.String(),
    "enrollment_count": pl.Int64(),
    "enrollment_type": pl.String(),
    "start_date": pl.Date(),
    "start_date_precision": pl.String(),
    "start_date_type": pl.String(),
    "primary_completion_date": pl.Date(),
    "primary_completion_date_precision": pl.String(),
    "primary_completion_date_type": pl.String(),
    "completion_date": pl.Date(),
    "completion_date_precision": pl.String(),
    "completion_date_type": pl.String(),
    "last_update_post_date": pl.Date(),
    "first_post_date": pl.Date(),
    "has_results": pl.Boolean(),
    "location_count": pl.Int32(),
}

LOCATIONS_SCHEMA: dict[str, pl.DataType] = {
    "nct_id": pl.String(),
    "seq": pl.Int32(),
    "facility_raw": pl.String(),
    "facility_normalised": pl.String(),
    "city": pl.String(),
    "state": pl.String(),
    "zip": pl.String(),
    "country": pl.String(),
    "status": pl.String(),
    "lat": pl.Float64(),
    "lon": pl.Float64(),
    "is_repeat": pl.Boolean(),
}

CONDITIONS_SCHEMA: dict[str, pl.DataType] = {
    "nct_id": pl.String(),
    "kind": pl.String(),
    "seq": pl.Int32(),
    "condition": pl.String(),
    "mesh_id": pl.String(),
    "mesh_id_raw": pl.String(),
    "mesh_term": pl.String(),
}

INTERVENTIONS_SCHEMA: dict[str, pl.DataType] = {
    "nct_id": pl.String(),
    "seq": pl.Int32(),
    "type": pl.String(),
    "name": pl.String(),
}

SPONSORS_SCHEMA: dict[str, pl.DataType] = {
    "nct_id": pl.String(),
    "role": pl.String(),
    "seq": pl.Int32(),
    "name": pl.String(),
    "class": pl.String(),
}

_DATE_FIELDS = (
    ("start_date", "startDateStruct"),
    ("primary_completion_date", "primaryCompletionDateStruct"),
    ("completion_date", "completionDateStruct"),
)

_REC = "__record"  # internal column: index of the source record (dedupe), dropped at the end


@dataclass(frozen=True)
class RegistryTables:
    studies: pl.DataFrame
    locations: pl.DataFrame
    conditions: pl.DataFrame
    interventions: pl.DataFrame
    sponsors: pl.DataFrame
    records_read: int
    skipped_records: int  # not an object, or no nctId
    duplicate_records: int  # same nctId seen again; the newest record was kept

    def tables(self) -> dict[str, pl.DataFrame]:
        return {
            "studies": self.studies,
            "locations": self.locations,
            "conditions": self.conditions,
            "interventions": self.interventions,
            "sponsors": self.sponsors,
        }

    def to_arrow(self) -> dict[str, Any]:
        """The same tables as pyarrow Tables."""
        return {name: frame.to_arrow() for name, frame in self.tables().items()}


# --------------------------------------------------------------------------- value helpers


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str | None:
    """A string field; numbers are stringified (zip codes), other types become None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


_DATE_RE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")


@lru_cache(maxsize=1 << 16)
def _iso_date(raw: str) -> tuple[str | None, str | None]:
    match = _DATE_RE.fullmatch(raw.strip())
    if not match:
        return None, None
    year, month, day = match.groups()
    try:
        parsed = date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return None, None
    precision = "day" if day else "month" if month else "year"
    return parsed.isoformat(), precision


def parse_partial_date(raw: Any) -> tuple[date | None, str | None]:
    """Parse a registry date: ``2016-07`` -> (2016-07-01, 'month').

    ``2016-07-15`` -> (2016-07-15, 'day'), ``2016`` -> (2016-01-01, 'year'), else (None, None).
    """
    if not isinstance(raw, str):
        return None, None
    iso, precision = _iso_date(raw)
    return (date.fromisoformat(iso) if iso else None), precision


_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`\u00b4]")
_NON_WORD = re.compile(r"[\W_]+")


@lru_cache(maxsize=1 << 18)
def normalise_facility(raw: str) -> str | None:
    """Lowercase, accents stripped, punctuation removed, whitespace collapsed.

    ``"Hôpital Saint-Louis, AP-HP"`` -> ``"hopital saint louis ap hp"``; apostrophes vanish
    (``"St. Mary's"`` -> ``"st marys"``). Empty results become None.
    """
    text = unicodedata.normalize("NFKD", raw)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _APOSTROPHES.sub("", text.casefold())
    text = _NON_WORD.sub(" ", text).strip()
    return text or None


#: Below these numbers a 10-character MeSH UI is a zero-padded 7-character one. MeSH switched to
#: 10-character UIs in 2014 and kept numbering where the 7-character ones stopped (NLM Technical
#: Bulletin 2013 Mar-Apr, "MeSH Unique Identifiers: Length Expanding to Ten Characters"). In the
#: reference exports the last 7-character ids are D065627 / C584914 and the first genuine
#: 10-character ones D000066448 / C000594389; the limits sit between those.
_SEVEN_CHAR_LIMIT = {"D": 66_400, "C": 590_000}
_MESH_ID_RE = re.compile(r"([A-Z])(\d{9})")


@lru_cache(maxsize=1 << 16)
def normalise_mesh_id(raw: str) -> str | None:
    """``D000006937`` -> ``D006937``; genuine 10-character ids (``D000068258``) stay as they are."""
    text = raw.strip().upper()
    match = _MESH_ID_RE.fullmatch(text)
    if match:
        letter, digits = match.groups()
        limit = _SEVEN_CHAR_LIMIT.get(letter)
        if limit is not None and digits.startswith("000") and int(digits) < limit:
            return letter + digits[3:]
    return text or None


# --------------------------------------------------------------------------- flattening


class _Buffer:
    """Column lists for one table, turned into a DataFrame every `CHUNK_RECORDS` records.

    The lists are cleared in place after each conversion (polars copies the values), so bound
    `append` methods stay valid and Python objects never pile up for the whole input.
    """

    def __init__(self, schema: dict[str, pl.DataType]):
        self.schema = {**schema, _REC: pl.Int64()}
        self.columns: dict[str, list[Any]] = {name: [] for name in self.schema}
        self.frames: list[pl.DataFrame] = []

    def flush(self) -> None:
        if self.columns[_REC]:
            self.frames.append(pl.DataFrame(self.columns, schema=self.schema))
            for values in self.columns.values():
                values.clear()

    def frame(self) -> pl.DataFrame:
        self.flush()
        if not self.frames:
            return pl.DataFrame(schema=self.schema)
        return pl.concat(self.frames, rechunk=False) if len(self.frames) > 1 else self.frames[0]


#: Records per intermediate DataFrame: bounds the Python objects alive at any time.
CHUNK_RECORDS = 10_000


def flatten_studies(records: Iterable[Any]) -> RegistryTables:
    """Flatten study records into `RegistryTables` (see the module docstring)."""
    # studies: dates stay ISO strings and phases a joined string until the end (cheap columns)
    staged = {
        name: (pl.String() if dtype in (pl.Date(), pl.List(pl.String())) else dtype)
        for name, dtype in STUDIES_SCHEMA.items()
    }
    study_buf, loc_buf = _Buffer(staged), _Buffer(LOCATIONS_SCHEMA)
    cond_buf, int_buf = _Buffer(CONDITIONS_SCHEMA), _Buffer(INTERVENTIONS_SCHEMA)
    spon_buf = _Buffer(SPONSORS_SCHEMA)
    buffers = (study_buf, loc_buf, cond_buf, int_buf, spon_buf)
    st, co, iv, sp = study_buf.columns, cond_buf.columns, int_buf.columns, spon_buf.columns
    lo = loc_buf.columns

    # bound methods of the hot location columns
    lo_nct, lo_seq, lo_rec = lo["nct_id"].append, lo["seq"].append, lo[_REC].append
    lo_fac, lo_facn = lo["facility_raw"].append, lo["facility_normalised"].append
    lo_city, lo_state, lo_zip = lo["city"].append, lo["state"].append, lo["zip"].append
    lo_country, lo_status = lo["country"].append, lo["status"].append
    lo_lat, lo_lon, lo_rep = lo["lat"].append, lo["lon"].append, lo["is_repeat"].append

    read = skipped = 0
    for rec_index, record in enumerate(records):
        read += 1
        if read % CHUNK_RECORDS == 0:
            for buffer in buffers:
                buffer.flush()
        if not isinstance(record, dict):
            skipped += 1
            continue
        ps = _d(record.get("protocolSection"))
        ident = _d(ps.get("identificationModule"))
        nct_id = ident.get("nctId")
        if not isinstance(nct_id, str) or not nct_id.strip():
            skipped += 1
            continue
        nct_id = nct_id.strip()
        status = _d(ps.get("statusModule"))
        design = _d(ps.get("designModule"))
        sponsors = _d(ps.get("sponsorCollaboratorsModule"))
        lead = _d(sponsors.get("leadSponsor"))
        enrollment = _d(design.get("enrollmentInfo"))
        locations = _l(_d(ps.get("contactsLocationsModule")).get("locations"))

        # ---- studies
        st[_REC].append(rec_index)
        st["nct_id"].append(nct_id)
        st["brief_title"].append(_s(ident.get("briefTitle")))
        st["overall_status"].append(_s(status.get("overallStatus")))
        phases = [p for p in _l(design.get("phases")) if isinstance(p, str)]
        st["phases"].append(None)  # split from phases_joined at the end
        st["phases_joined"].append("|".join(phases) if phases else None)
        st["study_type"].append(_s(design.get("studyType")))
        st["lead_sponsor_name"].append(_s(lead.get("name")))
        st["lead_sponsor_class"].append(_s(lead.get("class")))
        st["enrollment_count"].append(_int(enrollment.get("count")))
        st["enrollment_type"].append(_s(enrollment.get("type")))
        for column, struct_key in _DATE_FIELDS:
            struct = _d(status.get(struct_key))
            raw_date = struct.get("date")
            iso, precision = _iso_date(raw_date) if isinstance(raw_date, str) else (None, None)
            st[column].append(iso)  # ISO string; a Date once the frame is built
            st[f"{column}_precision"].append(precision)
            st[f"{column}_type"].append(_s(struct.get("type")))
        for column, struct_key in (
            ("last_update_post_date", "lastUpdatePostDateStruct"),
            ("first_post_date", "studyFirstPostDateStruct"),
        ):
            raw_date = _d(status.get(struct_key)).get("date")
            st[column].append(_iso_date(raw_date)[0] if isinstance(raw_date, str) else None)
        st["has_results"].append(_bool(record.get("hasResults")))
        st["location_count"].append(len(locations))

        # ---- locations
        seen_rows: set[tuple[Any, ...]] = set()
        for seq, loc in enumerate(locations, start=1):
            if not isinstance(loc, dict):
                loc = {}
            # the common case (a str) inline, anything else through _s
            facility, city = loc.get("facility"), loc.get("city")
            state, zip_code, country = loc.get("state"), loc.get("zip"), loc.get("country")
            if facility is not None and facility.__class__ is not str:
                facility = _s(facility)
            if city is not None and city.__class__ is not str:
                city = _s(city)
            if state is not None and state.__class__ is not str:
                state = _s(state)
            if zip_code is not None and zip_code.__class__ is not str:
                zip_code = _s(zip_code)
            if country is not None and country.__class__ is not str:
                country = _s(country)
            loc_status = loc.get("status")
            if loc_status is not None and loc_status.__class__ is not str:
                loc_status = _s(loc_status)
            geo = _d(loc.get("geoPoint"))
            key = (facility, city, state, zip_code, country)
            lo_rep(key in seen_rows)
            seen_rows.add(key)
            lo_nct(nct_id)
            lo_rec(rec_index)
            lo_seq(seq)
            lo_fac(facility)
            lo_facn(normalise_facility(facility) if facility else None)
            lo_city(city)
            lo_state(state)
            lo_zip(zip_code)
            lo_country(country)
            lo_status(loc_status)
            lo_lat(_float(geo.get("lat")))
            lo_lon(_float(geo.get("lon")))

        # ---- conditions
        seq = 0
        for text in _l(_d(ps.get("conditionsModule")).get("conditions")):
            if isinstance(text, str):
                seq += 1
                _append(co, nct_id, rec_index, "reported", seq, text, None, None, None)
        derived = _d(record.get("derivedSection"))
        seq = 0
        for mesh in _l(_d(derived.get("conditionBrowseModule")).get("meshes")):
            mesh = _d(mesh)
            raw_id, term = _s(mesh.get("id")), _s(mesh.get("term"))
            if raw_id is None and term is None:
                continue
            seq += 1
            mesh_id = normalise_mesh_id(raw_id) if raw_id else None
            _append(co, nct_id, rec_index, "mesh", seq, term, mesh_id, raw_id, term)

        # ---- interventions
        arms = _d(ps.get("armsInterventionsModule"))
        for seq, item in enumerate(_l(arms.get("interventions")), start=1):
            item = _d(item)
            iv["nct_id"].append(nct_id)
            iv[_REC].append(rec_index)
            iv["seq"].append(seq)
            iv["type"].append(_s(item.get("type")))
            iv["name"].append(_s(item.get("name")))

        # ---- sponsors
        if lead:
            _sponsor(sp, nct_id, rec_index, "lead", 1, lead)
        for seq, collaborator in enumerate(_l(sponsors.get("collaborators")), start=1):
            _sponsor(sp, nct_id, rec_index, "collaborator", seq, _d(collaborator))

    studies = _finish_studies(study_buf.frame())
    winners = _winners(studies)
    duplicates = studies.height - winners.height

    def keep(frame: pl.DataFrame) -> pl.DataFrame:
        if duplicates:
            frame = frame.join(winners, on=_REC, how="semi", maintain_order="left")
        return frame.drop(_REC)

    return RegistryTables(
        studies=keep(studies),
        locations=keep(loc_buf.frame()),
        conditions=keep(cond_buf.frame()),
        interventions=keep(int_buf.frame()),
        sponsors=keep(spon_buf.frame()),
        records_read=read,
        skipped_records=skipped,
        duplicate_records=duplicates,
    )


def _append(
    co: dict[str, list[Any]],
    nct_id: str,
    rec_index: int,
    kind: str,
    seq: int,
    condition: str | None,
    mesh_id: str | None,
    mesh_id_raw: str | None,
    mesh_term: str | None,
) -> None:
    co["nct_id"].append(nct_id)
    co[_REC].append(rec_index)
    co["kind"].append(kind)
    co["seq"].append(seq)
    co["condition"].append(condition)
    co["mesh_id"].append(mesh_id)
    co["mesh_id_raw"].append(mesh_id_raw)
    co["mesh_term"].append(mesh_term)


def _sponsor(
    sp: dict[str, list[Any]],
    nct_id: str,
    rec_index: int,
    role: str,
    seq: int,
    sponsor: dict[str, Any],
) -> None:
    sp["nct_id"].append(nct_id)
    sp[_REC].append(rec_index)
    sp["role"].append(role)
    sp["seq"].append(seq)
    sp["name"].append(_s(sponsor.get("name")))
    sp["class"].append(_s(sponsor.get("class")))


def _finish_studies(frame: pl.DataFrame) -> pl.DataFrame:
    """Dates from ISO strings, phases split from phases_joined (an empty list when absent)."""
    dates = [name for name, dtype in STUDIES_SCHEMA.items() if dtype == pl.Date()]
    return frame.with_columns(
        *(pl.col(name).str.to_date("%Y-%m-%d") for name in dates),
        phases=pl.col("phases_joined").str.split("|").fill_null(pl.lit([], pl.List(pl.String))),
    ).select([*STUDIES_SCHEMA, _REC])


def _winners(studies: pl.DataFrame) -> pl.DataFrame:
    """One record index per nct_id: the latest last_update_post_date, the later record on ties."""
    return (
        studies.select("nct_id", "last_update_post_date", _REC)
        .sort(["nct_id", "last_update_post_date", _REC], nulls_last=False)
        .group_by("nct_id", maintain_order=True)
        .agg(pl.col(_REC).last())
        .select(_REC)
    )
