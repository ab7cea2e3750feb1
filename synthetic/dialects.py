"""How each synthetic SMO writes its exports, and the profile that reads them back.

A dialect is the single description of an SMO's file format: `write_feed` renders canonical
rows in it and `profile()` emits the YAML profile for `ingest.profiles`, so the generated files
and their profiles cannot drift apart. Four dialects cover what sponsors receive:

- `iberia`:   semicolon CSV in cp1252, Spanish headers and codes, day-first dates, decimal commas
- `americas`: UTF-8 CSV with BOM, one file per study, month-first dates and `5-Mar-2024` dates
- `nordic`:   XLSX, a title block above the header, real date cells and one Excel-serial column
- `sakura`:   UTF-16 tab-separated text, Japanese headers and code lists, `2024/03/05` dates
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from expectations.feeds import FEEDS

EXCEL_EPOCH = dt.date(1899, 12, 30)


@dataclass(frozen=True)
class FeedDialect:
    file_pattern: str  # with {delivery_date:%Y%m%d} and, for per-study files, {study_id}
    headers: dict[str, str]  # canonical column -> the SMO's header, in the SMO's column order
    codes: dict[str, dict[str, str]] = field(default_factory=dict)  # column -> canonical -> SMO
    date_formats: dict[str, str] = field(default_factory=dict)  # per-column overrides
    extra_columns: dict[str, str] = field(default_factory=dict)  # header -> constant (dropped)
    sheet: str | None = None

    @property
    def per_study_file(self) -> bool:
        return "{study_id}" in self.file_pattern


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    file_type: str  # csv | xlsx
    date_format: str
    feeds: dict[str, FeedDialect]
    delimiter: str = ","
    encoding: str = "utf-8"
    #: Separators of the numbers this SMO writes in text files (the profile declares the same).
    decimal: str = "."
    thousands: str | None = None
    title_rows: tuple[str, ...] = ()  # xlsx: rows above the header

    @property
    def header_row(self) -> int:
        return len(self.title_rows) + 1

    def without(self, withheld: Iterable[str]) -> Dialect:
        """This dialect without some feeds (`deviations`) or columns (`visits.crf_entry_date`):
        an SMO that does not deliver a feed, or whose export format cannot carry a column (its
        files have no such column and its profile maps none)."""
        feeds = dict(self.feeds)
        for item in withheld:
            feed, _, column = item.partition(".")
            if feed not in feeds:
                raise ValueError(f"{self.name} has no feed {feed!r} to withhold")
            if not column:
                del feeds[feed]
                continue
            fd = feeds[feed]
            if column not in fd.headers or FEEDS[feed].column(column).required:
                raise ValueError(f"{item!r} is not an optional column of {self.name}'s {feed}")
            feeds[feed] = replace(
                fd,
                headers={c: h for c, h in fd.headers.items() if c != column},
                codes={c: t for c, t in fd.codes.items() if c != column},
                date_formats={c: f for c, f in fd.date_formats.items() if c != column},
            )
        return replace(self, feeds=feeds)

    def file_name(self, feed: str, delivery_date: dt.date, study_id: str | None = None) -> str:
        pattern = self.feeds[feed].file_pattern
        name = pattern.replace("{delivery_date:%Y%m%d}", delivery_date.strftime("%Y%m%d"))
        return name.replace("{study_id}", study_id or "")

    def profile(self, smo_id: str, version: str = "1") -> dict[str, Any]:
        """The ingest profile (as a YAML-ready dict) that reads this dialect."""
        file_opts: dict[str, Any] = {"type": self.file_type}
        if self.file_type == "csv":
            file_opts |= {"delimiter": self.delimiter, "encoding": self.encoding}
            if self.decimal != ".":
                file_opts["decimal"] = self.decimal
            if self.thousands:
                file_opts["thousands"] = self.thousands
        else:
            file_opts["header_row"] = self.header_row
        feeds = {}
        for feed_name, fd in self.feeds.items():
            body: dict[str, Any] = {
                "file_pattern": fd.file_pattern,
                "scope": "study" if fd.per_study_file else "all_studies",
                "columns": {header: col for col, header in fd.headers.items()},
            }
            if fd.sheet:
                body["file"] = {"sheet": fd.sheet}
            if fd.date_formats:
                body["date_formats"] = dict(fd.date_formats)
            if fd.codes:
                body["codes"] = {
                    col: {smo: canonical for canonical, smo in table.items()}
                    for col, table in fd.codes.items()
                }
            if fd.extra_columns:
                body["drop"] = list(fd.extra_columns)
            feeds[feed_name] = body
        return {
            "smo_id": smo_id,
            "profile_version": version,
            "description": f"{self.description} (synthetic SMO)",
            "file": file_opts,
            "date_format": self.date_format,
            "feeds": feeds,
        }

    # -- rendering --------------------------------------------------------------------------

    def _render(self, feed: str, column: str, value: Any) -> Any:
        """A canonical value as the SMO writes it (text for CSV; typed cells for XLSX)."""
        if value is None:
            return None if self.file_type == "xlsx" else ""
        fd = self.feeds[feed]
        dtype = FEEDS[feed].column(column).dtype
        if column in fd.codes:
            value = fd.codes[column].get(value, value)
        if dtype == "date":
            fmt = fd.date_formats.get(column, self.date_format)
            if fmt == "excel_serial":
                return (value - EXCEL_EPOCH).days
            if self.file_type == "xlsx" and fmt == "%Y-%m-%d":
                return value  # a real date cell
            return _format_date(value, fmt)
        if dtype == "float":
            if self.file_type == "xlsx":
                return value
            if not self.thousands:
                text = f"{value:.2f}"
                return text if self.decimal == "." else text.replace(".", self.decimal)
            return f"{value:,.2f}".translate({ord(","): self.thousands, ord("."): self.decimal})
        if dtype == "bool":
            return "true" if value else "false"
        return value

    def rows(self, feed: str, records: Iterable[dict[str, Any]]) -> Iterator[list[Any]]:
        fd = self.feeds[feed]
        extras = list(fd.extra_columns.values())
        for record in records:
            yield [self._render(feed, c, record.get(c)) for c in fd.headers] + extras

    def header(self, feed: str) -> list[str]:
        fd = self.feeds[feed]
        return list(fd.headers.values()) + list(fd.extra_columns)


@functools.lru_cache(maxsize=65536)
def _format_date(value: dt.date, fmt: str) -> str:
    """Dates repeat millions of times in a large portfolio; format each distinct one once."""
    text = value.strftime(fmt)
    return text.lstrip("0") if fmt.startswith("%d-%b") else text  # 5-Mar-2024, not 05-Mar-2024


class FeedWriter:
    """Streams one delivery file: open, write rows in batches, close."""

    def __init__(self, dialect: Dialect, feed: str, path: Path, title: str = ""):
        self.dialect, self.feed, self.path = dialect, feed, path
        path.parent.mkdir(parents=True, exist_ok=True)
        if dialect.file_type == "csv":
            self._handle = path.open("w", encoding=dialect.encoding, newline="")
            self._csv = csv.writer(self._handle, delimiter=dialect.delimiter, lineterminator="\r\n")
            self._csv.writerow(dialect.header(feed))
            return
        import xlsxwriter

        # constant_memory streams rows to disk; the fixed creation time keeps bytes reproducible.
        self._book = xlsxwriter.Workbook(
            str(path),
            {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
             "strings_to_urls": False},
        )  # fmt: skip
        self._book.set_properties({"created": dt.datetime(*FIXED_XLSX_TIME)})
        self._sheet = self._book.add_worksheet(dialect.feeds[feed].sheet)
        self._date_format = self._book.add_format({"num_format": "yyyy-mm-dd"})
        self._row = 0
        for line in dialect.title_rows:
            self._sheet.write_string(self._row, 0, line.format(title=title))
            self._row += 1
        self._sheet.write_row(self._row, 0, dialect.header(feed))
        self._row += 1

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        rows = self.dialect.rows(self.feed, records)
        if self.dialect.file_type == "csv":
            self._csv.writerows(rows)
            return
        sheet, date_format = self._sheet, self._date_format
        for row in rows:
            for col, value in enumerate(row):
                if value is None or value == "":
                    continue
                if isinstance(value, dt.date):
                    sheet.write_datetime(
                        self._row, col, dt.datetime.combine(value, dt.time()), date_format
                    )
                elif isinstance(value, int | float):
                    sheet.write_number(self._row, col, value)
                else:
                    sheet.write_string(self._row, col, str(value))
            self._row += 1

    def close(self) -> None:
        if self.dialect.file_type == "csv":
            self._handle.close()
        else:
            self._book.close()


#: What an XLSX file says about when it was made: fixed, so a seed always gives the same bytes.
FIXED_XLSX_TIME = (2026, 1, 1, 0, 0, 0)


def write_feed(
    dialect: Dialect, feed: str, path: Path, records: Iterable[dict[str, Any]], title: str = ""
) -> Path:
    writer = FeedWriter(dialect, feed, path, title)
    writer.write(records)
    writer.close()
    return path


# -- the four dialects ------------------------------------------------------------------------

_ES_SITE_STATUS = {
    "PLANNED": "Planificado",
    "SELECTED": "Seleccionado",
    "ACTIVATED": "Activado",
    "ENROLLING": "Reclutando",
    "CLOSED": "Cerrado",
    "DROPPED": "Abandonado",
}

# Demographics in each SMO's own words (canonical CDISC term -> the SMO's label); the profile
# maps them back. Race and ethnicity lists cover every CDISC term the generator may draw.
_ES_DEMOGRAPHICS = {
    "sex": {"F": "Mujer", "M": "Hombre", "U": "Desconocido", "UNDIFFERENTIATED": "Indiferenciado"},
    "race": {
        "AMERICAN INDIAN OR ALASKA NATIVE": "Indígena americana o nativa de Alaska",
        "ASIAN": "Asiática",
        "BLACK OR AFRICAN AMERICAN": "Negra o afroamericana",
        "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER": "Nativa de Hawái u otras islas del Pacífico",
        "WHITE": "Blanca",
        "MULTIPLE": "Varias",
        "OTHER": "Otra",
        "NOT REPORTED": "No consta",
        "UNKNOWN": "Desconocida",
    },
    "ethnic": {
        "HISPANIC OR LATINO": "Hispano o latino",
        "NOT HISPANIC OR LATINO": "No hispano ni latino",
        "NOT REPORTED": "No consta",
        "UNKNOWN": "Desconocido",
    },
}
_EN_DEMOGRAPHICS = {
    "sex": {"F": "Female", "M": "Male", "U": "Unknown", "UNDIFFERENTIATED": "Undifferentiated"},
    "race": {
        "AMERICAN INDIAN OR ALASKA NATIVE": "American Indian or Alaska Native",
        "ASIAN": "Asian",
        "BLACK OR AFRICAN AMERICAN": "Black or African American",
        "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER": "Native Hawaiian or Other Pacific Islander",
        "WHITE": "White",
        "MULTIPLE": "More than one race",
        "OTHER": "Other",
        "NOT REPORTED": "Not reported",
        "UNKNOWN": "Unknown",
    },
    "ethnic": {
        "HISPANIC OR LATINO": "Hispanic or Latino",
        "NOT HISPANIC OR LATINO": "Not Hispanic or Latino",
        "NOT REPORTED": "Not reported",
        "UNKNOWN": "Unknown",
    },
}
_SV_DEMOGRAPHICS = {
    "sex": {"F": "Kvinna", "M": "Man", "U": "Okänt", "UNDIFFERENTIATED": "Odifferentierat"},
    # The plans' bands (seeds/diversity_plans.csv) in the SMO's wording.
    "age_group": {"18-64": "18–64 år", "65-74": "65–74 år", "75+": "75 år och äldre"},
}
_JA_DEMOGRAPHICS = {
    "sex": {"F": "女性", "M": "男性", "U": "不明", "UNDIFFERENTIATED": "未分化"},
    "race": {
        "AMERICAN INDIAN OR ALASKA NATIVE": "アメリカ先住民又はアラスカ先住民",
        "ASIAN": "アジア人",
        "BLACK OR AFRICAN AMERICAN": "黒人又はアフリカ系アメリカ人",
        "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER": "ハワイ先住民又はその他の太平洋諸島民",
        "WHITE": "白人",
        "MULTIPLE": "複数",
        "OTHER": "その他",
        "NOT REPORTED": "未報告",
        "UNKNOWN": "不明",
    },
    "ethnic": {
        "HISPANIC OR LATINO": "ヒスパニック又はラテン系",
        "NOT HISPANIC OR LATINO": "非ヒスパニック又は非ラテン系",
        "NOT REPORTED": "未報告",
        "UNKNOWN": "不明",
    },
}

IBERIA = Dialect(
    name="iberia",
    description="Semicolon CSV in cp1252 with Spanish headers, day-first dates, decimal commas",
    file_type="csv",
    delimiter=";",
    encoding="cp1252",
    decimal=",",
    date_format="%d/%m/%Y",
    feeds={
        "sites": FeedDialect(
            "IBERIA_centros_{delivery_date:%Y%m%d}.csv",
            {
                "study_id": "Estudio",
                "site_id": "Centro",
                "site_name": "Nombre del centro",
                "country": "País",
                "city": "Ciudad",
                "principal_investigator": "Investigador principal",
                "status": "Estado",
                "nct_id": "Registro NCT",
                "selected_date": "Fecha selección",
                "irb_approval_date": "Fecha aprobación CEIm",
                "contract_executed_date": "Fecha firma contrato",
                "activation_date": "Fecha activación",
                "planned_activation_date": "Activación prevista",
                "closed_date": "Fecha cierre",
                "target_enrollment": "Objetivo reclutamiento",
            },
            codes={"status": _ES_SITE_STATUS},
            extra_columns={"Observaciones": ""},
        ),
        "subjects": FeedDialect(
            "IBERIA_pacientes_{delivery_date:%Y%m%d}.csv",
            {
                "study_id": "Estudio",
                "site_id": "Centro",
                "subject_id": "Código paciente",
                "consent_date": "Fecha consentimiento",
                "screened_date": "Fecha selección",
                "screen_failed_date": "Fecha fallo selección",
                "screen_fail_reason": "Motivo fallo selección",
                "randomized_date": "Fecha aleatorización",
                "discontinued_date": "Fecha retirada",
                "discontinuation_reason": "Motivo retirada",
                "completed_date": "Fecha finalización",
                "sex": "Sexo",
                "age": "Edad",
                "race": "Raza",
                "ethnic": "Etnia",
            },
            codes=_ES_DEMOGRAPHICS,
        ),
        "visits": FeedDialect(
            "IBERIA_visitas_{delivery_date:%Y%m%d}.csv",
            {
                "study_id": "Estudio",
                "subject_id": "Código paciente",
                "visit_id": "Visita",
                "visit_name": "Nombre visita",
                "status": "Estado visita",
                "planned_date": "Fecha prevista",
                "actual_date": "Fecha realizada",
                "crf_entry_date": "Fecha entrada CRD",
            },
            codes={
                "status": {"COMPLETED": "Realizada", "MISSED": "Perdida", "SCHEDULED": "Programada"}
            },
        ),
        "deviations": FeedDialect(
            "IBERIA_desviaciones_{delivery_date:%Y%m%d}.csv",
            {
                "study_id": "Estudio",
                "deviation_id": "Nº desviación",
                "site_id": "Centro",
                "subject_id": "Código paciente",
                "category": "Categoría",
                "term": "Descripción",
                "severity": "Gravedad",
                "occurred_date": "Fecha ocurrencia",
                "identified_date": "Fecha detección",
                "reported_date": "Fecha notificación",
                "closed_date": "Fecha cierre",
            },
            codes={"severity": {"IMPORTANT": "Importante", "NON_IMPORTANT": "No importante"}},
        ),
        "payments": FeedDialect(
            "IBERIA_pagos_{delivery_date:%Y%m%d}.csv",
            {
                "study_id": "Estudio",
                "payment_line_id": "Línea",
                "site_id": "Centro",
                "item_type": "Concepto",
                "amount": "Importe",
                "currency": "Moneda",
                "holdback_amount": "Retención",
                "trigger_date": "Fecha devengo",
                "invoice_date": "Fecha factura",
                "due_date": "Fecha vencimiento",
                "paid_date": "Fecha pago",
            },
            codes={
                "item_type": {
                    "STARTUP": "Puesta en marcha",
                    "VISIT": "Visita",
                    "SCREEN_FAIL": "Fallo de selección",
                    "PASS_THROUGH": "Gasto repercutido",
                    "CLOSEOUT": "Cierre",
                    "HOLDBACK_RELEASE": "Liberación retención",
                }
            },
        ),
        "staffing": FeedDialect(
            "IBERIA_personal_{delivery_date:%Y%m%d}.csv",
            {
                "site_id": "Centro",
                "crc_id": "Coordinador",
                "role": "Función",
                "start_date": "Fecha inicio",
                "end_date": "Fecha fin",
                "fte": "Dedicación",
            },
            codes={
                "role": {
                    "CRC": "CEC",
                    "BACKUP_CRC": "CEC suplente",
                    "SITE_MANAGER": "Gestor de centro",
                }
            },
        ),
    },
)

AMERICAS = Dialect(
    name="americas",
    description="UTF-8 CSV with BOM, one file per study, month-first dates",
    file_type="csv",
    delimiter=",",
    encoding="utf-8-sig",
    date_format="%m/%d/%Y",
    feeds={
        "sites": FeedDialect(
            "AMR_{study_id}_SiteList_{delivery_date:%Y%m%d}.csv",
            {
                "site_id": "Site #",
                "site_name": "Institution",
                "city": "City",
                "country": "Country Code",
                "principal_investigator": "PI",
                "status": "Site Status",
                "nct_id": "NCT Number",
                "selected_date": "Selection Date",
                "irb_approval_date": "IRB Approval",
                "contract_executed_date": "CTA Executed",
                "activation_date": "SIV Date",
                "planned_activation_date": "Planned SIV",
                "closed_date": "Close-out Date",
                "target_enrollment": "Enrollment Target",
            },
            codes={
                "status": {
                    "PLANNED": "Planned",
                    "SELECTED": "Selected",
                    "ACTIVATED": "Active - Not Recruiting",
                    "ENROLLING": "Active - Recruiting",
                    "CLOSED": "Closed",
                    "DROPPED": "Dropped",
                }
            },
            date_formats={"activation_date": "%d-%b-%Y", "planned_activation_date": "%d-%b-%Y"},
        ),
        "subjects": FeedDialect(
            "AMR_{study_id}_Subjects_{delivery_date:%Y%m%d}.csv",
            {
                "site_id": "Site #",
                "subject_id": "Subject ID",
                "consent_date": "ICF Signed",
                "screened_date": "Screening Date",
                "screen_failed_date": "Screen Fail Date",
                "screen_fail_reason": "Screen Fail Reason",
                "randomized_date": "Randomization Date",
                "discontinued_date": "Early Term Date",
                "discontinuation_reason": "Early Term Reason",
                "completed_date": "Completion Date",
                "sex": "Sex",
                "age": "Age",
                "race": "Race",
                "ethnic": "Ethnicity",
            },
            codes=_EN_DEMOGRAPHICS,
        ),
        "visits": FeedDialect(
            "AMR_{study_id}_Visits_{delivery_date:%Y%m%d}.csv",
            {
                "subject_id": "Subject ID",
                "visit_id": "Visit Code",
                "visit_name": "Visit",
                "status": "Visit Status",
                "planned_date": "Target Date",
                "actual_date": "Visit Date",
                "crf_entry_date": "eCRF Entered",
            },
            codes={"status": {"COMPLETED": "Done", "MISSED": "Missed", "SCHEDULED": "Scheduled"}},
        ),
        "deviations": FeedDialect(
            "AMR_{study_id}_PDs_{delivery_date:%Y%m%d}.csv",
            {
                "deviation_id": "PD Number",
                "site_id": "Site #",
                "subject_id": "Subject ID",
                "category": "PD Category",
                "term": "PD Description",
                "severity": "Classification",
                "occurred_date": "Date of Deviation",
                "identified_date": "Date Identified",
                "reported_date": "Date Reported",
                "closed_date": "Date Closed",
            },
            codes={"severity": {"IMPORTANT": "Major", "NON_IMPORTANT": "Minor"}},
        ),
        "payments": FeedDialect(
            "AMR_{study_id}_Payments_{delivery_date:%Y%m%d}.csv",
            {
                "payment_line_id": "Line ID",
                "site_id": "Site #",
                "item_type": "Payment Type",
                "amount": "Amount",
                "currency": "Currency",
                "holdback_amount": "Withholding",
                "trigger_date": "Earned Date",
                "invoice_date": "Invoice Date",
                "due_date": "Due Date",
                "paid_date": "Paid Date",
            },
            codes={
                "item_type": {
                    "STARTUP": "Startup Fee",
                    "VISIT": "Visit Fee",
                    "SCREEN_FAIL": "Screen Fail Fee",
                    "PASS_THROUGH": "Pass-through",
                    "CLOSEOUT": "Close-out Fee",
                    "HOLDBACK_RELEASE": "Withholding Release",
                }
            },
        ),
        "staffing": FeedDialect(
            "AMR_Staffing_{delivery_date:%Y%m%d}.csv",
            {
                "site_id": "Site #",
                "crc_id": "Staff ID",
                "role": "Role",
                "start_date": "Assigned From",
                "end_date": "Assigned To",
                "fte": "FTE",
            },
            codes={
                "role": {
                    "CRC": "Primary CRC",
                    "BACKUP_CRC": "Backup CRC",
                    "SITE_MANAGER": "Site Manager",
                }
            },
        ),
    },
)

NORDIC = Dialect(
    name="nordic",
    description="XLSX workbooks with a title block above the header; no staffing feed",
    file_type="xlsx",
    date_format="%Y-%m-%d",
    title_rows=("Nordic Site Services - {title}", "Confidential - prepared for the sponsor", ""),
    feeds={
        "sites": FeedDialect(
            "NSS_SiteStatus_{delivery_date:%Y%m%d}.xlsx",
            {
                "study_id": "Study",
                "site_id": "Site",
                "site_name": "Site name",
                "country": "Country",
                "city": "City",
                "principal_investigator": "Investigator",
                "status": "Status",
                "nct_id": "NCT",
                "selected_date": "Selected",
                "irb_approval_date": "EC approval",
                "contract_executed_date": "Contract signed",
                "activation_date": "Activated",
                "planned_activation_date": "Activation plan",
                "closed_date": "Closed",
                "target_enrollment": "Target",
            },
            sheet="Sites",
        ),
        "subjects": FeedDialect(
            "NSS_Subjects_{delivery_date:%Y%m%d}.xlsx",
            {
                "study_id": "Study",
                "site_id": "Site",
                "subject_id": "Subject",
                "consent_date": "Consented",
                "screened_date": "Screened",
                "screen_failed_date": "Screen failed",
                "screen_fail_reason": "Screen failure reason",
                "randomized_date": "Randomised",
                "discontinued_date": "Withdrawn",
                "discontinuation_reason": "Withdrawal reason",
                "completed_date": "Completed",
                # Nordic registries record no race or ethnicity; ages come as bands.
                "sex": "Kön",
                "age_group": "Åldersgrupp",
            },
            codes=_SV_DEMOGRAPHICS,
            sheet="Subjects",
        ),
        "visits": FeedDialect(
            "NSS_Visits_{delivery_date:%Y%m%d}.xlsx",
            {
                "study_id": "Study",
                "subject_id": "Subject",
                "visit_id": "Visit no",
                "visit_name": "Visit",
                "status": "Status",
                "planned_date": "Planned",
                "actual_date": "Performed",
                "crf_entry_date": "Data entered",
            },
            date_formats={"crf_entry_date": "excel_serial"},
            sheet="Visits",
        ),
        "deviations": FeedDialect(
            "NSS_Deviations_{delivery_date:%Y%m%d}.xlsx",
            {
                "study_id": "Study",
                "deviation_id": "Deviation",
                "site_id": "Site",
                "subject_id": "Subject",
                "category": "Category",
                "term": "Description",
                "severity": "Severity",
                "occurred_date": "Occurred",
                "identified_date": "Identified",
                "reported_date": "Reported",
                "closed_date": "Closed",
            },
            sheet="Deviations",
        ),
        "payments": FeedDialect(
            "NSS_Payments_{delivery_date:%Y%m%d}.xlsx",
            {
                "study_id": "Study",
                "payment_line_id": "Line",
                "site_id": "Site",
                "item_type": "Item",
                "amount": "Amount",
                "currency": "Currency",
                "holdback_amount": "Holdback",
                "trigger_date": "Earned",
                "invoice_date": "Invoiced",
                "due_date": "Due",
                "paid_date": "Paid",
            },
            sheet="Payments",
        ),
    },
)

SAKURA = Dialect(
    name="sakura",
    description="UTF-16 tab-separated text with Japanese headers and code lists; no payments",
    file_type="csv",
    delimiter="\t",
    encoding="utf-16",
    date_format="%Y/%m/%d",
    feeds={
        "sites": FeedDialect(
            "SAKURA_施設一覧_{delivery_date:%Y%m%d}.txt",
            {
                "study_id": "試験番号",
                "site_id": "施設番号",
                "site_name": "施設名",
                "country": "国",
                "city": "都市",
                "principal_investigator": "責任医師",
                "status": "施設ステータス",
                "nct_id": "NCT番号",
                "selected_date": "選定日",
                "irb_approval_date": "IRB承認日",
                "contract_executed_date": "契約締結日",
                "activation_date": "開始日",
                "planned_activation_date": "開始予定日",
                "closed_date": "終了日",
                "target_enrollment": "目標症例数",
            },
            codes={
                "status": {
                    "PLANNED": "計画中",
                    "SELECTED": "選定済",
                    "ACTIVATED": "開始済",
                    "ENROLLING": "登録中",
                    "CLOSED": "終了",
                    "DROPPED": "中止",
                }
            },
        ),
        "subjects": FeedDialect(
            "SAKURA_被験者_{delivery_date:%Y%m%d}.txt",
            {
                "study_id": "試験番号",
                "site_id": "施設番号",
                "subject_id": "被験者識別コード",
                "consent_date": "同意取得日",
                "screened_date": "スクリーニング日",
                "screen_failed_date": "スクリーニング脱落日",
                "screen_fail_reason": "脱落理由",
                "randomized_date": "割付日",
                "discontinued_date": "中止日",
                "discontinuation_reason": "中止理由",
                "completed_date": "完了日",
                "sex": "性別",
                "age": "年齢",
                "race": "人種",
                "ethnic": "民族",
            },
            codes=_JA_DEMOGRAPHICS,
        ),
        "visits": FeedDialect(
            "SAKURA_来院_{delivery_date:%Y%m%d}.txt",
            {
                "study_id": "試験番号",
                "subject_id": "被験者識別コード",
                "visit_id": "来院番号",
                "visit_name": "来院名",
                "status": "来院状況",
                "planned_date": "予定日",
                "actual_date": "来院日",
                "crf_entry_date": "EDC入力日",
            },
            codes={"status": {"COMPLETED": "実施済", "MISSED": "欠測", "SCHEDULED": "予定"}},
        ),
        "deviations": FeedDialect(
            "SAKURA_逸脱_{delivery_date:%Y%m%d}.txt",
            {
                "study_id": "試験番号",
                "deviation_id": "逸脱番号",
                "site_id": "施設番号",
                "subject_id": "被験者識別コード",
                "category": "分類",
                "term": "内容",
                "severity": "重要度",
                "occurred_date": "発生日",
                "identified_date": "発見日",
                "reported_date": "報告日",
                "closed_date": "完了日",
            },
            codes={"severity": {"IMPORTANT": "重大", "NON_IMPORTANT": "軽微"}},
        ),
        "staffing": FeedDialect(
            "SAKURA_担当者_{delivery_date:%Y%m%d}.txt",
            {
                "site_id": "施設番号",
                "crc_id": "担当者コード",
                "role": "役割",
                "start_date": "担当開始日",
                "end_date": "担当終了日",
                "fte": "専従率",
            },
            codes={
                "role": {
                    "CRC": "CRC",
                    "BACKUP_CRC": "サブCRC",
                    "SITE_MANAGER": "施設担当マネージャー",
                }
            },
        ),
    },
)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (IBERIA, AMERICAS, NORDIC, SAKURA)}
