"""Delivery contracts: the rules of spec 2.1 as pandera schemas on the polars backend.

Every rule has a stable id (the `error` of its pandera check) that reports, the ledger and the
tests name. Checks are written as polars expressions over the whole frame, so validating a
5M-row delivery stays a handful of vectorised passes. Schemas validate typed canonical frames;
turning an SMO's file into one (and reporting values that do not parse) is `ingest.gate`'s job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pandera.polars as pa
import polars as pl
from pandera.config import ValidationDepth, config_context

from expectations.feeds import (
    ACTION_CLOSED_STATUSES,
    ACTION_TARGET_COLUMNS,
    ACTION_TARGET_TYPES,
    AGE_GROUP_PATTERN,
    FEEDS,
    ISO_COUNTRIES,
    ISO_CURRENCIES,
    Feed,
)

POLARS_TYPES: dict[str, type[pl.DataType]] = {
    "str": pl.Utf8,
    "date": pl.Date,
    "int": pl.Int64,
    "float": pl.Float64,
    "bool": pl.Boolean,
}


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    #: Columns whose values a report shows for a failing row (frame-level rules).
    columns: tuple[str, ...] = ()


RULES: dict[str, Rule] = {
    r.id: r
    for r in (
        # File and header level (raised by ingest.readers / ingest.gate).
        Rule("file.empty", "The file has no bytes."),
        Rule("file.no_rows", "The file has a header but no data rows; a snapshot cannot be empty."),
        Rule("file.encoding", "The bytes are not valid in the encoding the profile declares."),
        Rule(
            "file.unreadable",
            "The file cannot be parsed as the declared file type, or processing it failed "
            "unexpectedly (the report quotes the error).",
        ),
        Rule("file.truncated", "The file does not end with a line break: it may be cut off."),
        Rule("file.ragged_row", "A row has more or fewer fields than the header."),
        Rule(
            "file.quoting",
            "Malformed CSV quoting: a stray or unclosed quote that would merge or split rows.",
        ),
        Rule(
            "file.record_count",
            "The CSV parser and the file's lines disagree on the records: not read as written.",
        ),
        Rule("file.delimiter", "The header does not split on the declared delimiter."),
        Rule("file.sheet_missing", "The workbook has no sheet with the declared name."),
        Rule("file.name_unrecognized", "No feed pattern in the SMO's profile matches the name."),
        Rule(
            "file.name_unsafe",
            "The name is not valid UTF-8 or holds control characters; the entry was quarantined "
            "unopened under an escaped name.",
        ),
        Rule(
            "file.not_regular",
            "Not a regular file (a symbolic link, folder, named pipe, socket or device); it was "
            "quarantined unopened and never followed.",
        ),
        Rule("file.study_mismatch", "Rows belong to a study other than the one the file is for."),
        Rule(
            "sdtm.domain_unrecognized",
            "An SDTM delivery file is not one of the domains DM, DS, SV, DV, SUPPDV.",
        ),
        Rule(
            "sdtm.domain_missing",
            "An SDTM delivery lacks a domain it needs (DM, DS, SV; DV for SUPPDV) or has one twice.",
        ),
        Rule(
            "sdtm.unknown_term",
            "A DSDECOD disposition term the profile does not classify (never guessed).",
        ),
        Rule("column.missing", "A required canonical column is not in the file."),
        Rule("column.unmapped", "A column is neither mapped nor dropped by the profile."),
        Rule("column.duplicate", "Two file columns map onto the same canonical column."),
        Rule("column.direct_identifier", "A column name suggests a direct patient identifier."),
        # Values.
        Rule(
            "value.control_character",
            "A control character (NUL, other C0 or C1 controls, DEL) in a value or header.",
        ),
        Rule("value.error_cell", "A workbook cell holds an error value (#N/A, #REF!, ...)."),
        Rule(
            "value.formula_without_value",
            "A workbook cell holds a formula whose value was never computed and saved.",
        ),
        Rule("value.required", "A required value is empty."),
        Rule("value.type", "The value does not parse as the declared type or date format."),
        Rule("value.enum", "The value is not in the column's code list (after code mapping)."),
        Rule(
            "value.age_band",
            "An age band must read '<lower>-<upper>' or '<lower>+' in whole years with lower <= "
            "upper (e.g. 18-64, 75+), after code mapping.",
        ),
        Rule("value.country_iso", "The country is not an ISO 3166-1 alpha-2 code."),
        Rule("value.currency_iso", "The currency is not an ISO 4217 code."),
        Rule("value.fte_range", "FTE must be between 0 and 1.5."),
        Rule("value.non_negative", "The value must not be negative."),
        Rule(
            "value.finite",
            "A number must be finite: NaN and infinity (e.g. a number too long for a double) "
            "are refused, never loaded.",
        ),
        Rule("key.unique", "The row's key appears more than once in the file."),
        Rule("date.not_after_delivery", "A date lies after the delivery date."),
        # Plausibility (spec 2.1 + what the warehouse needs): a value that passes these cannot
        # fail a warehouse test on its own, so one SMO's delivery never blocks another's.
        Rule(
            "date.before_window",
            "A date lies before the plausible window: before SMO_DATE_WINDOW_EARLIEST, or more "
            "than SMO_DATE_WINDOW_MARGIN_DAYS before the study's first planned activation.",
        ),
        Rule(
            "date.after_window",
            "A plan or due date lies more than SMO_DATE_WINDOW_FUTURE_YEARS after the delivery.",
        ),
        Rule(
            "warehouse.check_failed",
            "Loaded, then pulled: a blocking warehouse check failed on this delivery's rows "
            "(a rule across feeds or weeks that no single file shows).",
        ),
        Rule(
            "file.delivery_date_future",
            "The delivery date in the file name is after the file's arrival (plus one day).",
        ),
        Rule(
            "fx.rate_missing",
            "No FX rate for the currency (or the reporting currency) on the payment's date "
            "(trigger, else invoice, else delivery date) in dbt_project/seeds/fx_rates.csv.",
            ("currency", "trigger_date", "invoice_date"),
        ),
        Rule(
            "roster.site_known",
            "The site is not in the SMO's current roster for the study.",
            ("study_id", "site_id"),
        ),
        # Cross-column rules of spec 2.1.
        Rule(
            "order.consent_le_screened",
            "consent_date must not be after screened_date.",
            ("consent_date", "screened_date"),
        ),
        Rule(
            "order.screened_le_randomized",
            "screened_date must not be after randomized_date.",
            ("screened_date", "randomized_date"),
        ),
        Rule(
            "exclusive.screen_failed_randomized",
            "A subject cannot be both screen-failed and randomized.",
            ("screen_failed_date", "randomized_date"),
        ),
        Rule(
            "order.randomized_le_discontinued",
            "discontinued_date must not precede randomization.",
            ("randomized_date", "discontinued_date"),
        ),
        Rule(
            "order.randomized_le_completed",
            "completed_date must not precede randomization.",
            ("randomized_date", "completed_date"),
        ),
        Rule(
            "order.actual_le_crf_entry",
            "crf_entry_date must not precede the visit's actual_date.",
            ("actual_date", "crf_entry_date"),
        ),
        Rule(
            "order.occurred_le_identified",
            "identified_date must not precede occurred_date.",
            ("occurred_date", "identified_date"),
        ),
        Rule(
            "order.identified_le_reported",
            "reported_date must not precede identified_date.",
            ("identified_date", "reported_date"),
        ),
        Rule(
            "order.trigger_le_paid",
            "paid_date must not precede trigger_date.",
            ("trigger_date", "paid_date"),
        ),
        Rule(
            "order.selected_le_irb_approval",
            "irb_approval_date must not precede selected_date.",
            ("selected_date", "irb_approval_date"),
        ),
        Rule(
            "order.selected_le_contract",
            "contract_executed_date must not precede selected_date.",
            ("selected_date", "contract_executed_date"),
        ),
        Rule(
            "order.selected_le_activation",
            "activation_date must not precede selected_date.",
            ("selected_date", "activation_date"),
        ),
        Rule(
            "order.start_le_end",
            "end_date must not precede start_date.",
            ("start_date", "end_date"),
        ),
        Rule(
            "amount.non_negative",
            "amount must be >= 0 unless the line is a credit note.",
            ("amount", "credit_note"),
        ),
        # The sponsor's oversight actions (spec 2.5).
        Rule(
            "action.target_consistent",
            "The target columns must match target_type: SITE_FLAG needs site_id and kri_id "
            "(target_smo_id optional), QTL needs qtl_id, SMO needs target_smo_id, DELIVERY "
            "needs target_delivery_id; every other target column must be empty.",
        ),
        Rule(
            "action.dates_in_order",
            "due_date and closed_date must not be before the action's opened_date.",
        ),
        Rule(
            "action.closed_with_status",
            "closed_date is required when the status is DONE or CANCELLED, and must be empty "
            "while the action is OPEN or IN_PROGRESS.",
        ),
        Rule(
            "action.target_exists",
            "The target is unknown to the warehouse at ingest: the study on no SMO's current "
            "roster, the site not on a roster of that study, the KRI not a site KRI of "
            "seeds/kri_definitions.csv, the QTL not in seeds/qtl_definitions.csv, the SMO "
            "without a current roster, or the delivery not in ops.deliveries.",
        ),
    )
}

PANDERA_BUILTIN_RULES = {
    "not_nullable": "value.required",
    "multiple_fields_uniqueness": "key.unique",
}


#: Columns of the frame `validate` returns: one row per failing cell (column set) or row.
FAILURE_SCHEMA = {"rule": pl.Utf8, "column": pl.Utf8, "row_index": pl.Int64}


def _expr_check(rule_id: str, build: Callable[[str | None], pl.Expr]) -> pa.Check:
    """A check from a polars expression that is True where the row passes (nulls pass).

    The expression stays on the check (`row_rule`), so `holds` can evaluate every rule of a
    schema in one pass."""

    def row_rule(key: str | None) -> pl.Expr:
        return build(key).fill_null(True)

    def check(data) -> pl.LazyFrame:
        return data.lazyframe.select(row_rule(data.key).alias("ok"))

    built = pa.Check(check, name=rule_id, error=rule_id)
    built.row_rule = row_rule
    return built


def _in_list(rule_id: str, values: Iterable[str]) -> pa.Check:
    allowed = pl.Series(sorted(values), dtype=pl.Utf8)
    return _expr_check(rule_id, lambda c: pl.col(c).is_in(allowed))


def _age_band(column: str) -> pl.Expr:
    """True where the band is well formed and its lower bound is not above its upper one."""
    text = pl.col(column)
    lower = text.str.extract(r"^(\d{1,3})-", 1).cast(pl.Int64)
    upper = text.str.extract(r"-(\d{1,3})$", 1).cast(pl.Int64)
    return text.str.contains(AGE_GROUP_PATTERN) & (lower <= upper).fill_null(True)


def _not_after(delivery_date: dt.date) -> pa.Check:
    return _expr_check("date.not_after_delivery", lambda c: pl.col(c) <= delivery_date)


def _le(a: str, b: str, rule_id: str) -> pa.Check:
    return _expr_check(rule_id, lambda _: pl.col(a) <= pl.col(b))


def _cross_column_checks(feed: Feed) -> list[pa.Check]:
    names = set(feed.column_names)
    checks = [
        _le(*RULES[rule_id].columns, rule_id)
        for rule_id in (
            "order.consent_le_screened",
            "order.screened_le_randomized",
            "order.randomized_le_discontinued",
            "order.randomized_le_completed",
            "order.actual_le_crf_entry",
            "order.occurred_le_identified",
            "order.identified_le_reported",
            "order.trigger_le_paid",
            "order.start_le_end",
            "order.selected_le_irb_approval",
            "order.selected_le_contract",
            "order.selected_le_activation",
        )
        if set(RULES[rule_id].columns) <= names
    ]
    if {"screen_failed_date", "randomized_date"} <= names:
        checks.append(
            _expr_check(
                "exclusive.screen_failed_randomized",
                lambda _: (
                    pl.col("screen_failed_date").is_null() | pl.col("randomized_date").is_null()
                ),
            )
        )
    if {"amount", "credit_note"} <= names:
        checks.append(
            _expr_check(
                "amount.non_negative",
                lambda _: (pl.col("amount") >= 0) | pl.col("credit_note").fill_null(False),
            )
        )
    return checks


def roster_keys(study_ids: Iterable[str], site_ids: Iterable[str]) -> frozenset[str]:
    """Encode (study, site) pairs the way the roster check compares them."""
    return frozenset(f"{study}\x1f{site}" for study, site in zip(study_ids, site_ids, strict=True))


def _roster_check(feed: Feed, roster: frozenset[str]) -> pa.Check:
    if feed.roster_reference == "study":
        key = pl.concat_str([pl.col("study_id"), pl.col("site_id")], separator="\x1f")
    else:  # "smo": the site may be on any of the SMO's study rosters
        key = pl.col("site_id")
        roster = frozenset(k.split("\x1f", 1)[1] for k in roster)
    values = pl.Series(sorted(roster), dtype=pl.Utf8)
    return _expr_check("roster.site_known", lambda _: key.is_in(values))


@dataclass(frozen=True)
class ActionTargets:
    """What an oversight action may point at: what the warehouse and the seeds know at ingest
    (built by `ingest.plausibility.action_targets`)."""

    studies: frozenset[str] = frozenset()
    #: (study, site) pairs of every SMO's current rosters, as `roster_keys` encodes them.
    sites: frozenset[str] = frozenset()
    kris: frozenset[str] = frozenset()
    qtls: frozenset[str] = frozenset()
    smos: frozenset[str] = frozenset()
    deliveries: frozenset[int] = frozenset()


def _action_checks(feed: Feed, targets: ActionTargets | None) -> dict[str, list[pa.Check]]:
    """Per column: target columns consistent with target_type, dates in order, closed_date
    with the status, and (given `targets`) targets that exist. Checks sit on the column they
    blame, so a report names row, column and rule; they read the other columns they need."""
    if feed.name != "oversight_actions":
        return {}
    kind = pl.col("target_type")
    checks: dict[str, list[pa.Check]] = {}
    for column, needs in ACTION_TARGET_COLUMNS.items():
        required = kind.is_in([t for t, n in needs.items() if n == "required"])
        allowed = kind.is_in(list(needs))
        present = pl.col(column).is_not_null()
        ok = pl.when(kind.is_in(ACTION_TARGET_TYPES)).then(
            (present | ~required) & (~present | allowed)
        )
        checks[column] = [_expr_check("action.target_consistent", lambda _, ok=ok: ok)]
    for column in ("due_date", "closed_date"):
        checks[column] = [
            _expr_check("action.dates_in_order", lambda c: pl.col(c) >= pl.col("opened_date"))
        ]
    closed = pl.col("status").is_in(ACTION_CLOSED_STATUSES)
    checks["closed_date"].append(
        _expr_check(
            "action.closed_with_status",
            lambda c: pl.col(c).is_not_null() == closed,
        )
    )
    if targets is None:
        return checks

    def member(values, expr: pl.Expr, dtype=pl.Utf8) -> pl.Expr:
        return expr.is_in(pl.Series(sorted(values), dtype=dtype))

    site_key = pl.concat_str([pl.col("study_id"), pl.col("site_id")], separator="\x1f")
    exists = {
        "study_id": member(targets.studies, pl.col("study_id")),
        "site_id": member(targets.sites, site_key),
        "kri_id": member(targets.kris, pl.col("kri_id")),
        "qtl_id": member(targets.qtls, pl.col("qtl_id")),
        "target_smo_id": member(targets.smos, pl.col("target_smo_id")),
        "target_delivery_id": member(
            targets.deliveries, pl.col("target_delivery_id"), dtype=pl.Int64
        ),
    }
    for column, ok in exists.items():
        checks.setdefault(column, []).append(
            _expr_check("action.target_exists", lambda _, ok=ok: ok)
        )
    return checks


@dataclass(frozen=True)
class Plausibility:
    """What one delivery must satisfy beyond its own contract so that no warehouse test can
    fail on it: dates in a window around the study, FX rates for every payment.

    Built by `ingest.plausibility` from the settings, the SMO's roster and the FX seed.
    """

    earliest: dt.date = dt.date(2000, 1, 1)
    margin_days: int = 730
    future_years: int = 15
    #: study_id -> the study's first planned activation (or selection, or activation) date on
    #: the SMO's current roster; dates more than `margin_days` before it are implausible.
    study_starts: Mapping[str, dt.date] = field(default_factory=dict)
    #: currency -> the first date the FX seed has a rate for it; None skips the FX rule.
    fx_first_rate: Mapping[str, dt.date] | None = None
    reporting_currency: str = "EUR"
    #: What the sponsor's oversight actions may target; None skips `action.target_exists`.
    targets: ActionTargets | None = None

    def study_floors(self) -> dict[str, dt.date]:
        margin = dt.timedelta(days=self.margin_days)
        return {
            study: max(self.earliest, start - margin) for study, start in self.study_starts.items()
        }


def _date_window_checks(
    feed: Feed, plausibility: Plausibility, delivery_date: dt.date | None
) -> dict[str, list[pa.Check]]:
    floors = plausibility.study_floors()
    if feed.per_study and floors:
        floor = pl.col("study_id").replace_strict(
            floors, default=plausibility.earliest, return_dtype=pl.Date
        )
    else:
        floor = pl.lit(plausibility.earliest, dtype=pl.Date)
    checks: dict[str, list[pa.Check]] = {}
    for col in feed.columns:
        if col.dtype != "date":
            continue
        checks[col.name] = [
            _expr_check("date.before_window", lambda c, floor=floor: pl.col(c) >= floor)
        ]
        if col.may_be_future and delivery_date is not None:
            latest = delivery_date.replace(year=delivery_date.year + plausibility.future_years)
            checks[col.name].append(
                _expr_check("date.after_window", lambda c, latest=latest: pl.col(c) <= latest)
            )
    return checks


def _fx_check(feed: Feed, plausibility: Plausibility, delivery_date: dt.date | None) -> pa.Check:
    """The warehouse converts each line at the rate valid on its trigger date (else invoice
    date, else delivery date): a line without such a rate would have no reporting amount."""
    first = plausibility.fx_first_rate or {}
    reporting_first = first.get(plausibility.reporting_currency)
    fx_date = pl.coalesce(
        pl.col("trigger_date"), pl.col("invoice_date"), pl.lit(delivery_date, dtype=pl.Date)
    )
    currency_first = pl.col("currency").replace_strict(
        dict(first), default=None, return_dtype=pl.Date
    )
    ok = currency_first.is_not_null() & (fx_date >= currency_first)
    ok = pl.lit(False) if reporting_first is None else ok & (fx_date >= reporting_first)
    # A missing currency or date is value.required's business, not this rule's.
    ok = ok | pl.col("currency").is_null() | fx_date.is_null()
    return _expr_check("fx.rate_missing", lambda _: ok)


def feed_schema(
    feed: Feed | str,
    *,
    delivery_date: dt.date | None = None,
    roster: frozenset[str] | None = None,
    unique_within: tuple[str, ...] = (),
    plausibility: Plausibility | None = None,
) -> pa.DataFrameSchema:
    """The contract for one feed.

    `delivery_date` adds "no date after the delivery"; `roster` (from `roster_keys`) adds the
    site reference rule. Without them the schema holds the intrinsic rules only, which is what
    the warehouse re-checks on current rows. `unique_within` widens the key (e.g. by smo_id
    when several SMOs' rows are checked together). `plausibility` adds the date window and the
    FX rule (delivery gate only: they depend on the roster and the seed at delivery time).
    """
    feed = FEEDS[feed] if isinstance(feed, str) else feed
    window = _date_window_checks(feed, plausibility, delivery_date) if plausibility else {}
    actions = _action_checks(feed, plausibility.targets if plausibility else None)
    columns: dict[str, pa.Column] = {}
    for col in feed.columns:
        checks: list[pa.Check] = []
        if col.enum:
            checks.append(_in_list("value.enum", col.enum))
        if col.name == "age_group":
            checks.append(_expr_check("value.age_band", _age_band))
        if col.name == "country":
            checks.append(_in_list("value.country_iso", ISO_COUNTRIES))
        if col.name == "currency":
            checks.append(_in_list("value.currency_iso", ISO_CURRENCIES))
        if col.name == "fte":
            checks.append(_expr_check("value.fte_range", lambda c: pl.col(c).is_between(0, 1.5)))
        if col.dtype == "float":
            checks.append(_expr_check("value.finite", lambda c: pl.col(c).is_finite()))
        if col.non_negative:
            checks.append(_expr_check("value.non_negative", lambda c: pl.col(c) >= 0))
        if col.dtype == "date" and delivery_date is not None and not col.may_be_future:
            checks.append(_not_after(delivery_date))
        checks += window.get(col.name, [])
        checks += actions.get(col.name, [])
        columns[col.name] = pa.Column(
            POLARS_TYPES[col.dtype], checks=checks, nullable=not col.required, required=True
        )
    frame_checks = _cross_column_checks(feed)
    fx_columns = {"currency", "trigger_date", "invoice_date"}
    if (
        plausibility
        and plausibility.fx_first_rate is not None
        and fx_columns <= set(feed.column_names)
    ):
        frame_checks.append(_fx_check(feed, plausibility, delivery_date))
    if roster is not None and feed.roster_reference:
        frame_checks.append(_roster_check(feed, roster))
    return pa.DataFrameSchema(
        columns,
        checks=frame_checks,
        unique=[*unique_within, *feed.key],
        name=f"{feed.name}_contract",
    )


def validate(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """Every failure of `frame` against `schema` at once, as a frame of FAILURE_SCHEMA.

    `row_index` is 0-based in `frame`; `column` is null for rules over several columns.
    A frame that `holds` to the schema has none; any other is validated by pandera, which
    finds and describes each failure.
    """
    if holds(frame, schema):
        return pl.DataFrame(schema=FAILURE_SCHEMA)
    return pandera_failures(frame, schema)


def holds(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> bool | None:
    """Whether every rule of `schema` passes on `frame`, evaluated in one polars pass.

    pandera evaluates each check on its own (three collects per check, ~75 checks a feed):
    most of the delivery gate's time on valid files, which are most files. This computes the
    same verdict (the schema's dtypes, nullability, key uniqueness and `_expr_check` rules, with
    pandera's semantics: a float that must be present may not be NaN either; nulls in a key
    compare equal) as one `select` of one boolean per rule. None when the schema has anything
    else (a check not built by `_expr_check`, coercion, a regex column, ...): pandera decides.
    tests/ingest/test_contract_one_pass.py holds it to pandera's verdict on generated frames.
    """
    if schema.coerce or schema.strict or schema.ordered or schema.add_missing_columns:
        return None
    if schema.parsers or getattr(schema, "drop_invalid_rows", False):
        return None
    verdicts: list[pl.Expr] = []
    for name, column in schema.columns.items():
        if column.regex or column.coerce or column.unique or column.parsers:
            return None
        if column.default is not None or not column.required:
            return None
        if name not in frame.columns or frame.schema[name] != column.dtype.type:
            return None  # pandera names the missing column or the wrong type
        if not column.nullable:
            present = pl.col(name).is_not_null()
            if frame.schema[name].is_float():
                present = present & pl.col(name).is_not_nan()
            verdicts.append(present.all())
        for check in column.checks:
            if getattr(check, "row_rule", None) is None:
                return None
            verdicts.append(check.row_rule(name).all())
    for check in schema.checks:
        if getattr(check, "row_rule", None) is None:
            return None
        verdicts.append(check.row_rule(None).all())
    unique = schema.unique or []  # one key (column names) or several (lists of them)
    keys = [unique] if unique and all(isinstance(k, str) for k in unique) else unique
    if any(not set(key) <= set(frame.columns) for key in keys):
        return None
    try:
        # pandera's own uniqueness call, then every other rule in one select
        if any(frame.select(key).is_duplicated().any() for key in keys):
            return False
        return all(frame.select(v.alias(f"rule_{i}") for i, v in enumerate(verdicts)).row(0))
    except pl.exceptions.PolarsError:
        return None  # pandera reports the rule that cannot be evaluated


def pandera_failures(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """`validate` by pandera alone: each check on its own, each failure with its row."""
    # Polars frames are validated lazily by pandera; data-level checks only run at this depth.
    with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        try:
            schema.validate(frame, lazy=True)
        except pa.errors.SchemaErrors as errors:
            return _failures(errors.failure_cases)
    return pl.DataFrame(schema=FAILURE_SCHEMA)


def _failures(cases: pl.DataFrame) -> pl.DataFrame:
    rule = pl.col("check").replace(PANDERA_BUILTIN_RULES)
    known = pl.Series(list(RULES), dtype=pl.Utf8)
    return cases.select(
        # A dtype or other unexpected schema error is reported as a type problem, never hidden.
        pl.when(rule.is_in(known)).then(rule).otherwise(pl.lit("value.type")).alias("rule"),
        pl.when(pl.col("schema_context") == "Column").then(pl.col("column")).alias("column"),
        pl.col("index").cast(pl.Int64).alias("row_index"),
    )
