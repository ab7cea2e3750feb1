"""`smo-oversight profile init`: a starter profile from sample files, every guess commented.

Nothing here is trusted: the YAML says, beside each value, what was detected and how, so a
person reviews it before `check-delivery`. Two kinds of source:

- SMO exports (CSV or XLSX): per file, the feed (from the file name), file type, encoding,
  delimiter, sheet and header row, decimal comma, missing-value tokens, date formats (a format
  is proposed only when every value of a column fits it), headers that already are canonical
  column names. Other headers are listed, dropped until someone maps them.
- CDISC SDTM domains (`.xpt`, or CSV with a DOMAIN column): the `sdtm:` section with the
  standard variables, the CDISC controlled terms of DSDECOD in the disposition classes, the
  milestones the data has, and identifier variables (BRTHDTC) under `strip_identifiers`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path

import polars as pl

from expectations.feeds import FEEDS
from expectations.identifiers import direct_identifier_kind
from ingest.profiles import DATE_FORMAT_EXAMPLES, EXCEL_SERIAL, FileOptions, date_format_regex
from ingest.readers import COMMON_DELIMITERS, DeliveryFileError, read_delivery

#: CDISC controlled terminology (NCOMPLT / protocol milestones) per disposition class.
CDISC_TERMS = {
    "consent": ["INFORMED CONSENT OBTAINED"],
    "randomized": ["RANDOMIZED"],
    "screen_failure": ["SCREEN FAILURE"],
    "completed": ["COMPLETED"],
    "discontinued": [
        "ADVERSE EVENT", "DEATH", "LACK OF EFFICACY", "LOST TO FOLLOW-UP", "NON-COMPLIANCE WITH STUDY DRUG",
        "PHYSICIAN DECISION", "PREGNANCY", "PROGRESSIVE DISEASE", "PROTOCOL DEVIATION",
        "PROTOCOL VIOLATION", "RECOVERY", "SITE TERMINATED BY SPONSOR",
        "STUDY TERMINATED BY SPONSOR", "TECHNICAL PROBLEMS", "WITHDRAWAL BY PARENT/GUARDIAN",
        "WITHDRAWAL BY SUBJECT", "OTHER",
    ],
    "other": ["ELIGIBILITY CRITERIA MET", "STUDY TREATMENT DISCONTINUED"],
}  # fmt: skip
SDTM_DOMAINS = ("DM", "DS", "SV", "DV", "SUPPDV")
#: Words in a file name that suggest a feed (the languages of the SMOs we know).
FEED_WORDS = {
    "sites": ["site", "sites", "centro", "centros", "centre", "施設"],
    "subjects": ["subject", "subjects", "patient", "pacientes", "paciente", "被験者"],
    "visits": ["visit", "visits", "visitas", "来院"],
    "deviations": ["deviation", "deviations", "pd", "pds", "desviaciones", "逸脱"],
    "payments": ["payment", "payments", "pagos", "支払"],
    "staffing": ["staff", "staffing", "personal", "担当者"],
}
MISSING_TOKENS = ("NA", "N/A", "n/a", "NULL", "null", "-", "#N/A", "ND")


def _q(text: str) -> str:
    """A YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _list(items) -> str:
    return "[" + ", ".join(_q(str(i)) for i in items) + "]"


# -- detection ---------------------------------------------------------------------------------


def detect_encoding(data: bytes) -> tuple[str, str]:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        return "utf-16", "a UTF-16 byte order mark"
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig", "a UTF-8 byte order mark"
    try:
        data.decode("utf-8")
        return "utf-8", "every byte is valid UTF-8"
    except UnicodeDecodeError:
        return "cp1252", "not valid UTF-8; cp1252 (Windows Western) is the usual alternative"


def detect_delimiter(header: str) -> tuple[str, str]:
    counts = {d: header.count(d) for d in COMMON_DELIMITERS}
    best = max(counts, key=counts.get)
    shown = {"\t": "tab"}.get(best, best)
    return best, f"'{shown}' splits the header into {counts[best] + 1} columns"


def _python_regex(rust: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\x\{([0-9A-F]+)\}", lambda m: re.escape(chr(int(m[1], 16))), rust))


def detect_date_format(values: list[str]) -> str | None:
    """The date format every value fits; `AMBIGUOUS:a|b` when several do; None if none."""
    fits = []
    for fmt in DATE_FORMAT_EXAMPLES:
        if fmt == EXCEL_SERIAL:
            continue
        regex = _python_regex(date_format_regex(fmt))
        try:
            if all(regex.fullmatch(v) for v in values):
                for v in values:
                    dt.datetime.strptime(v, fmt)
                fits.append(fmt)
        except ValueError:
            continue
    return fits[0] if len(fits) == 1 else ("AMBIGUOUS:" + "|".join(fits) if fits else None)


def _text_values(frame: pl.DataFrame, column: str, limit: int = 2000) -> list[str]:
    series = frame.get_column(column).drop_nulls().head(limit).cast(pl.Utf8).str.strip_chars()
    return [v for v in series.to_list() if v and v not in MISSING_TOKENS]


def _feed_of_name(name: str) -> str | None:
    stem = re.sub(r"([a-z])([A-Z])", r"\1 \2", Path(name).stem)  # SiteList -> Site List
    words = {w.lower() for w in re.split(r"[^0-9A-Za-z]+", stem) if w}

    def fits(key: str) -> bool:
        return key in stem if not key.isascii() else key.lower() in words

    found = [f for f, keys in FEED_WORDS.items() if any(fits(k) for k in keys)]
    return found[0] if len(found) == 1 else None


def _pattern_of_name(name: str) -> tuple[str, str]:
    m = re.search(r"(?<![0-9])(20[0-9]{2})([01][0-9])([0-3][0-9])(?![0-9])", name)
    if m:
        try:
            dt.date(int(m[1]), int(m[2]), int(m[3]))
            return (name[: m.start()] + "{delivery_date:%Y%m%d}" + name[m.end() :],
                    f"'{m[0]}' in the name read as the delivery date")  # fmt: skip
        except ValueError:
            pass
    return name, "no date found in the name: the arrival time will date each delivery"


# -- SMO exports -------------------------------------------------------------------------------


def _xlsx_layout(path: Path) -> tuple[str, int, str]:
    import fastexcel

    book = fastexcel.read_excel(path)
    sheet = book.sheet_names[0]
    rows = book.load_sheet(sheet, header_row=None, dtypes="string", n_rows=30).to_polars()
    filled = [sum(v is not None and str(v).strip() != "" for v in row) for row in rows.iter_rows()]
    header = filled.index(max(filled)) + 1
    note = (
        f"sheet {sheet!r} of {book.sheet_names}; row {header} is the first with {max(filled)} cells"
    )
    return sheet, header, note


def _smo_feed(path: Path) -> tuple[str | None, list[str], FileOptions, list[str]]:
    """(feed, YAML lines of the feed body, file options, notes for the top of the file)."""
    notes: list[str] = []
    feed = _feed_of_name(path.name)
    pattern, pattern_note = _pattern_of_name(path.name)
    body = [f"    file_pattern: {_q(pattern)}   # guess: {pattern_note}",
            "    scope: all_studies   # guess: use study + {study_id} in the pattern for one file per study"]  # fmt: skip
    data = path.read_bytes()[: 1 << 20]
    if data[:2] == b"PK":
        sheet, header_row, note = _xlsx_layout(path)
        opts = FileOptions(type="xlsx", sheet=sheet, header_row=header_row)
        body.append(
            f"    file: {{type: xlsx, sheet: {_q(sheet)}, header_row: {header_row}}}   # guess: {note}"
        )
    else:
        encoding, enc_note = detect_encoding(data)
        text = data.decode(encoding, errors="replace").lstrip("\ufeff")
        delimiter, delim_note = detect_delimiter(text.splitlines()[0] if text else "")
        opts = FileOptions(type="csv", encoding=encoding, delimiter=delimiter)
        body.append(f"    file: {{type: csv, encoding: {encoding}, delimiter: {_q(delimiter)}}}"
                    f"   # guess: {enc_note}; {delim_note}")  # fmt: skip
    try:
        frame = read_delivery(path, opts).frame
    except DeliveryFileError as exc:
        body.append(f"    # could not read the file with these options: {exc.message}")
        return feed, body, opts, notes
    tokens = sorted({t for c in frame.columns for t in MISSING_TOKENS
                     if frame.get_column(c).cast(pl.Utf8).str.strip_chars().eq(t).any()})  # fmt: skip
    if tokens:
        body.append(f"    # guess: cells holding only {tokens} look like missing values")
        body[-2] = body[-2].replace("}", f", null_values: {_list(['', *tokens])}}}", 1)
    if opts.type == "csv":
        decimal = [c for c in frame.columns
                   if (vals := _text_values(frame, c)) and all(re.fullmatch(r"-?[0-9]+,[0-9]+", v) for v in vals)]  # fmt: skip
        if decimal:
            body.append(f"    # guess: {decimal} hold numbers with a decimal comma")
            idx = next(i for i, line in enumerate(body) if line.startswith("    file:"))
            body[idx] = body[idx].replace("}", ', decimal: ","}', 1)
    canonical = FEEDS[feed].column_names if feed else ()
    columns, unmapped, strip, dates = {}, [], [], {}
    for column in frame.columns:
        if direct_identifier_kind(column):
            strip.append(column)
            continue
        values = _text_values(frame, column)
        fmt = detect_date_format(values) if values else None
        if fmt:
            dates[column] = fmt
        target = column if column in canonical else next(
            (c for c in canonical if c.replace("_", " ") == column.strip().lower().replace("_", " ")), None)  # fmt: skip
        if target:
            columns[column] = target
        else:
            unmapped.append(column)
    formats = Counter(f for f in dates.values() if not f.startswith("AMBIGUOUS"))
    if formats:
        main = formats.most_common(1)[0][0]
        body.append(f"    date_format: {_q(main)}   # guess: the format every value of "
                    f"{[c for c, f in dates.items() if f == main]} fits")  # fmt: skip
    for column, fmt in dates.items():
        if fmt.startswith("AMBIGUOUS"):
            body.append(
                f"    # {column!r}: dates fit several formats ({fmt[10:]}): declare the right one"
            )
        elif formats and fmt != formats.most_common(1)[0][0]:
            body.append(
                f"    # {column!r}: dates fit {fmt}: declare it under date_formats once mapped"
            )
    mapped_dates = (
        [t for t in columns.values() if t in FEEDS[feed].names_of("date")] if feed else []
    )
    if mapped_dates and not formats:
        body.append(
            '    date_format: "%Y-%m-%d"   # REVIEW: no date format detected; declare the right one'
        )
    body.append("    columns:" + ("" if columns else " {}"))
    for source, target in columns.items():
        body.append(f"      {_q(source)}: {target}   # guess: the header is the canonical name")
    if unmapped:
        body.append("    # Headers not recognised: map each under columns (header: canonical column)"
                    " and take it out of drop.")  # fmt: skip
        if feed:
            body.append(f"    # {feed} columns: {', '.join(canonical)}")
        body.append(f"    drop: {_list(unmapped)}   # REVIEW: dropped only until mapped")
    if strip:
        body.append(f"    strip_identifiers: {_list(strip)}   # direct identifiers: removed on read, "
                    "never stored; better, ask the SMO to leave them out of the export")  # fmt: skip
    if feed is None:
        notes.append(f"{path.name}: no feed recognised in the name; its entry is commented out")
    return feed, body, opts, notes


# -- SDTM --------------------------------------------------------------------------------------


def _read_any(path: Path) -> pl.DataFrame | None:
    opts = FileOptions(type="xport", encoding="latin-1") if path.suffix.lower() == ".xpt" else None
    if opts is None:
        data = path.read_bytes()[: 1 << 20]
        if data[:2] == b"PK":
            return None
        encoding, _ = detect_encoding(data)
        text = data.decode(encoding, errors="replace").lstrip("\ufeff")
        delimiter, _ = detect_delimiter(text.splitlines()[0] if text else "")
        opts = FileOptions(type="csv", encoding=encoding, delimiter=delimiter)
    try:
        return read_delivery(path, opts).frame
    except DeliveryFileError:
        return None


def _sdtm_domain(path: Path, frame: pl.DataFrame | None) -> str | None:
    stem = Path(path.name).stem.upper()
    if stem in SDTM_DOMAINS:
        return stem
    if frame is None:
        return None
    for col, prefix in (("DOMAIN", ""), ("RDOMAIN", "SUPP")):
        if col in frame.columns:
            values = frame.get_column(col).drop_nulls().unique().to_list()
            if len(values) == 1 and f"{prefix}{values[0]}".upper() in SDTM_DOMAINS:
                return f"{prefix}{values[0]}".upper()
    return None


def _sdtm_profile(smo_id: str, domains: dict[str, tuple[Path, pl.DataFrame]]) -> str:
    names = {d: p.name for d, (p, _) in domains.items()}
    xpt = all(p.suffix.lower() == ".xpt" for p, _ in domains.values())
    pattern = (
        "{domain}.xpt"
        if xpt and all(n.lower() == f"{d.lower()}.xpt" for d, n in names.items())
        else None
    )
    frames = {d: f for d, (_, f) in domains.items()}
    dm, ds = frames.get("DM"), frames.get("DS")
    lines = [
        f"# Starter profile written by `smo-oversight profile init` on {dt.date.today()} from",
        f"# {', '.join(names.values())}. Every value marked 'guess' was detected from these",
        "# files: review each, then run check-delivery (docs/profiles.md, CDISC SDTM deliveries).",
        f"smo_id: {_q(smo_id)}",
        "profile_version: 1",
        'description: "CDISC SDTM source (review)"',
    ]
    tokens = sorted({t for f in frames.values() for c in f.columns for t in MISSING_TOKENS
                     if f.get_column(c).str.strip_chars().eq(t).any()})  # fmt: skip
    file_line = (
        "file: {type: xport, encoding: latin-1" if xpt else "file: {type: csv, encoding: utf-8"
    )
    file_line += f", null_values: {_list(['', *tokens])}}}"
    lines.append(file_line + f"   # guess: {'SAS transport' if xpt else 'CSV'}; "
                 + (f"cells holding only {tokens} look like missing values" if tokens else "no missing-value tokens seen (XPORT blanks are always missing)"))  # fmt: skip
    dtc = [v for f in frames.values() for c in f.columns if c.endswith("DTC")
           for v in f.get_column(c).drop_nulls().head(5000).to_list()]  # fmt: skip
    partial = sum(bool(re.fullmatch(r"[0-9]{4}(-[0-9]{2})?", v)) for v in dtc)
    lines.append(f"partial_dates: {'first_day' if partial else 'reject'}   # guess: {partial} partial "
                 f"ISO 8601 date(s) (2014-03, 2014) among {len(dtc):,} --DTC values; first_day reads them "
                 "as the first day with a precision column, reject refuses them")  # fmt: skip
    lines.append("sdtm:")
    if pattern:
        lines.append(
            f"  file_pattern: {_q(pattern)}   # guess: the files are named after their domain"
        )
    else:
        lines.append('  file_pattern: "{domain}.xpt"   # guess: your names differ; the DOMAIN column '
                     "identifies each file anyway")  # fmt: skip
    lines.append("  subjects:")
    rfic = (
        dm is not None
        and "RFICDTC" in dm.columns
        and dm.get_column("RFICDTC").drop_nulls().len() > 0
    )
    categories = ("DISPOSITION EVENT", "PROTOCOL MILESTONE")
    terms = set()
    if ds is not None and {"DSDECOD", "DSCAT"} <= set(ds.columns):
        classified = ds.filter(pl.col("DSCAT").is_in(categories))
        terms = set(classified.get_column("DSDECOD").drop_nulls().unique().to_list())
    lines.append("    screened_date: [RFICDTC, consent_milestone, first_screening_visit]   # tried in "
                 f"order (guess: RFICDTC {'is' if rfic else 'is never'} filled, consent milestone "
                 f"{'present' if 'INFORMED CONSENT OBTAINED' in terms else 'absent'})")  # fmt: skip
    lines.append(
        '    screening_visit: "^SCREENING"   # guess: regex on SV.VISIT for the first screening visit'
    )
    if "RANDOMIZED" in terms:
        lines.append(
            "    randomized_date: [randomized_milestone]   # guess: DS has a RANDOMIZED milestone"
        )
    else:
        lines.append("    randomized_date: [randomized_milestone, RFSTDTC]   # guess: no RANDOMIZED milestone "
                     "in DS; RFSTDTC of subjects not screen-failed (confirm this holds for the study)")  # fmt: skip
    armcd = sorted(v for v in (dm.get_column("ARMCD").drop_nulls().unique().to_list() if dm is not None and "ARMCD" in dm.columns else [])
                   if re.fullmatch(r"(?i)scrn ?fail|screen ?fail(ure)?", v))  # fmt: skip
    if "SCREEN FAILURE" in terms:
        lines.append("    screen_failure: DSDECOD   # guess: DS has SCREEN FAILURE events"
                     + (f" (ARMCD {armcd} agrees: screen_failure: ARMCD is the alternative)" if armcd else ""))  # fmt: skip
    elif armcd:
        lines.append(f"    screen_failure: ARMCD   # guess: no SCREEN FAILURE in DS; ARMCD {armcd}")
        lines.append(f"    screen_failure_armcd: {_list(armcd)}")
    else:
        lines.append("    screen_failure: DSDECOD   # guess: no screen failure seen in DS or ARMCD")
    demo = [v for v in ("SEX", "AGE", "RACE", "ETHNIC") if dm is not None and v in dm.columns]
    lines.append(
        f"    demographics: {_list(demo)}   # carried onto subjects (representativeness); never BRTHDTC"
    )
    lines.append("  disposition:")
    lines.append(
        '    categories: ["DISPOSITION EVENT", "PROTOCOL MILESTONE"]   # DSCAT values whose terms are classified'
    )
    known = {t: cls for cls, ts in CDISC_TERMS.items() for t in ts}
    for cls, cdisc in CDISC_TERMS.items():
        seen = [t for t in cdisc if t in terms]
        if cls == "completed" and not seen:
            seen = ["COMPLETED"]
        lines.append(f"    {cls}: {_list(seen)}   # CDISC terms seen in DS"
                     + (f"; other CDISC terms: {', '.join(t for t in cdisc if t not in seen)}" if len(seen) < len(cdisc) else ""))  # fmt: skip
    unknown = sorted(terms - set(known))
    if unknown:
        lines.append(f"    # REVIEW: DSDECOD terms that are not CDISC terms: {unknown}. Add each to a class, "
                     "or map it onto a listed term under term_map; until then they are sdtm.unknown_term "
                     "(DS rows of categories not listed above are ignored)")  # fmt: skip
    lines.append(
        "    term_map: {}   # renamed terms across SDTM versions, e.g. {PROTOCOL DEVIATION: PROTOCOL VIOLATION}"
    )
    if "DV" in frames:
        dv = frames["DV"]
        supp = frames.get("SUPPDV")
        qnams = (
            sorted(supp.get_column("QNAM").unique().to_list())
            if supp is not None and "QNAM" in supp.columns
            else []
        )
        cats = (
            sorted(dv.get_column("DVCAT").drop_nulls().unique().to_list())
            if "DVCAT" in dv.columns
            else []
        )
        if qnams:
            qnam = qnams[0]
            values = sorted(
                supp.filter(pl.col("QNAM") == qnam)
                .get_column("QVAL")
                .drop_nulls()
                .unique()
                .to_list()
            )
            lines.append(
                f"  deviations:   # guess: SUPPDV qualifier {qnam} (of {qnams}) holds importance values {values}"
            )
            lines.append(f"    importance_from: SUPPDV\n    qnam: {_q(qnam)}")
            lines.append("    importance: {" + ", ".join(f"{_q(v)}: {'IMPORTANT' if v.upper() in ('Y', 'YES', 'IMPORTANT', 'MAJOR') else 'NON_IMPORTANT'}" for v in values) + "}   # REVIEW")  # fmt: skip
        else:
            lines.append(
                f"  deviations:   # guess: no SUPPDV; DVCAT values {cats}: say which are IMPORTANT"
            )
            lines.append("    importance_from: DVCAT")
            lines.append("    importance: {" + ", ".join(f"{_q(c)}: NON_IMPORTANT" for c in cats) + "}   # REVIEW: all NON_IMPORTANT until reviewed")  # fmt: skip
    lines.append("  sites: {from: dm, status: ENROLLING}   # guess: no SMO site roster given; a minimal roster "
                 "from DM (SITEID, COUNTRY, INVNAM), start-up KPIs without data. Use sites: smo if the SMO sends one")  # fmt: skip
    ids = sorted({c for f in frames.values() for c in f.columns if direct_identifier_kind(c)})
    if ids:
        lines.append(f"  strip_identifiers: {_list(ids)}   # direct identifiers ({', '.join(direct_identifier_kind(c) for c in ids)}) "
                     "found: listed here they are dropped on read and never stored; without this line the "
                     "delivery is rejected. Better: ask for an export without them")  # fmt: skip
    return "\n".join(lines) + "\n"


# -- entry point -------------------------------------------------------------------------------


def starter_profile(smo_id: str, paths: list[Path]) -> str:
    """The YAML text of a starter profile for `paths` (SDTM domains or SMO exports)."""
    sdtm: dict[str, tuple[Path, pl.DataFrame]] = {}
    others: list[Path] = []
    for path in paths:
        frame = _read_any(path) if path.suffix.lower() in (".xpt", ".csv", ".txt") else None
        domain = _sdtm_domain(path, frame)
        if (
            domain
            and frame is not None
            and (path.suffix.lower() == ".xpt" or "USUBJID" in frame.columns)
        ):
            sdtm[domain] = (path, frame)
        else:
            others.append(path)
    if sdtm and others:
        raise ValueError(
            f"{', '.join(p.name for p in others)} are not SDTM domains while "
            f"{', '.join(p.name for p, _ in sdtm.values())} are: one profile per source, run init twice"
        )
    if sdtm:
        return _sdtm_profile(smo_id, sdtm)
    lines = [
        f"# Starter profile written by `smo-oversight profile init` on {dt.date.today()} from",
        f"# {', '.join(p.name for p in paths)}. Every value marked 'guess' was detected from these",
        "# files: review each, then run check-delivery (docs/profiles.md).",
        f"smo_id: {_q(smo_id)}",
        "profile_version: 1",
        'description: "(review)"',
        "feeds:",
    ]
    used: set[str] = set()
    for path in paths:
        feed, body, _, notes = _smo_feed(path)
        if feed is None or feed in used:
            why = "no feed recognised in its name" if feed is None else f"a second {feed} file"
            lines.append(f"  # {path.name}: {why}; name the feed and uncomment")
            lines += ["  # <feed>:"] + [f"  #{line}" for line in body]
            continue
        used.add(feed)
        lines.append(f"  {feed}:   # guess: from the file name {path.name!r}")
        lines += body
    return "\n".join(lines) + "\n"
