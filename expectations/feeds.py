"""The canonical feeds: the six SMO feeds (spec 2.1) and the sponsor's oversight actions (spec
2.5): columns, types, code lists and keys.

One definition serves the pandera contracts, the raw-table DDL, the profile validator and the
synthetic generator, so a column added here is known everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

DType = Literal["str", "date", "int", "float", "bool"]

SITE_STATUSES = ("PLANNED", "SELECTED", "ACTIVATED", "ENROLLING", "CLOSED", "DROPPED")
VISIT_STATUSES = ("COMPLETED", "MISSED", "SCHEDULED")
DEVIATION_SEVERITIES = ("IMPORTANT", "NON_IMPORTANT")
PAYMENT_ITEM_TYPES = (
    "STARTUP",
    "VISIT",
    "SCREEN_FAIL",
    "PASS_THROUGH",
    "CLOSEOUT",
    "HOLDBACK_RELEASE",
)
STAFF_ROLES = ("CRC", "BACKUP_CRC", "SITE_MANAGER")
# Demographics (spec 3.2) in CDISC controlled terminology, as SDTM DM carries them; a profile's
# `codes` map an SMO's own labels onto these. SEX C66731, RACE C74457 (with the SDTMIG values
# for several, other and not collected), ETHNIC C66790.
SEX_TERMS = ("F", "M", "U", "UNDIFFERENTIATED")
RACE_TERMS = (
    "AMERICAN INDIAN OR ALASKA NATIVE",
    "ASIAN",
    "BLACK OR AFRICAN AMERICAN",
    "NATIVE HAWAIIAN OR OTHER PACIFIC ISLANDER",
    "WHITE",
    "MULTIPLE",
    "OTHER",
    "NOT REPORTED",
    "UNKNOWN",
)
ETHNIC_TERMS = ("HISPANIC OR LATINO", "NOT HISPANIC OR LATINO", "NOT REPORTED", "UNKNOWN")
#: An age band an SMO delivers instead of an age, in years inclusive: "18-64" or "75+" (a
#: profile's codes map the SMO's labels onto this); the study's diversity plan
#: (seeds/diversity_plans.csv) says which bands it counts.
AGE_GROUP_PATTERN = r"^(\d{1,3})-(\d{1,3})$|^(\d{1,3})\+$"


def is_age_band(text: str) -> bool:
    """Whether `text` is an age band the contract accepts (`value.age_band`): the pattern, and
    a lower bound not above the upper one."""
    match = re.fullmatch(AGE_GROUP_PATTERN, text)
    return match is not None and (match[1] is None or int(match[1]) <= int(match[2]))


#: The reserved sender id of the sponsor's own feeds (inbox/SPONSOR/, profiles/SPONSOR.yaml); no
#: SMO may use it, and the SPONSOR profile may name sponsor feeds only.
SPONSOR_ID = "SPONSOR"
#: What an oversight action is about, and the columns each kind of target needs
#: (`action.target_consistent`): a site flag is a site x KRI (an SMO may be named for context).
ACTION_TARGET_TYPES = ("SITE_FLAG", "QTL", "SMO", "DELIVERY")
ACTION_TARGET_COLUMNS = {
    "site_id": {"SITE_FLAG": "required"},
    "kri_id": {"SITE_FLAG": "required"},
    "qtl_id": {"QTL": "required"},
    "target_smo_id": {"SMO": "required", "SITE_FLAG": "optional"},
    "target_delivery_id": {"DELIVERY": "required"},
}
ACTION_STATUSES = ("OPEN", "IN_PROGRESS", "DONE", "CANCELLED")
#: Statuses that end an action: closed_date is required with them and empty otherwise.
ACTION_CLOSED_STATUSES = ("DONE", "CANCELLED")


PRECISION_SUFFIX = "_precision"


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


# ISO 3166-1 alpha-2 (officially assigned) and ISO 4217 active currency codes.
ISO_COUNTRIES = _codes(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW
    """
)
ISO_CURRENCIES = _codes(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
    KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN
    MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD
    SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH
    UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG
    """
)

#: ISO 3166-1 alpha-3 -> alpha-2 (SDTM DM.COUNTRY is alpha-3; from CLDR territory aliases).
ALPHA3_TO_ALPHA2 = dict(
    pair.split(":")
    for pair in [
        "ABW:AW",
        "AFG:AF",
        "AGO:AO",
        "AIA:AI",
        "ALA:AX",
        "ALB:AL",
        "AND:AD",
        "ANT:CW",
        "ARE:AE",
        "ARG:AR",
        "ARM:AM",
        "ASM:AS",
        "ATA:AQ",
        "ATF:TF",
        "ATG:AG",
        "AUS:AU",
        "AUT:AT",
        "AZE:AZ",
        "BDI:BI",
        "BEL:BE",
        "BEN:BJ",
        "BES:BQ",
        "BFA:BF",
        "BGD:BD",
        "BGR:BG",
        "BHR:BH",
        "BHS:BS",
        "BIH:BA",
        "BLM:BL",
        "BLR:BY",
        "BLZ:BZ",
        "BMU:BM",
        "BOL:BO",
        "BRA:BR",
        "BRB:BB",
        "BRN:BN",
        "BTN:BT",
        "BUR:MM",
        "BVT:BV",
        "BWA:BW",
        "CAF:CF",
        "CAN:CA",
        "CCK:CC",
        "CHE:CH",
        "CHL:CL",
        "CHN:CN",
        "CIV:CI",
        "CMR:CM",
        "COD:CD",
        "COG:CG",
        "COK:CK",
        "COL:CO",
        "COM:KM",
        "CPV:CV",
        "CRI:CR",
        "CUB:CU",
        "CUW:CW",
        "CXR:CX",
        "CYM:KY",
        "CYP:CY",
        "CZE:CZ",
        "DDR:DE",
        "DEU:DE",
        "DJI:DJ",
        "DMA:DM",
        "DNK:DK",
        "DOM:DO",
        "DZA:DZ",
        "ECU:EC",
        "EGY:EG",
        "ERI:ER",
        "ESH:EH",
        "ESP:ES",
        "EST:EE",
        "ETH:ET",
        "FIN:FI",
        "FJI:FJ",
        "FLK:FK",
        "FRA:FR",
        "FRO:FO",
        "FSM:FM",
        "FXX:FR",
        "GAB:GA",
        "GBR:GB",
        "GEO:GE",
        "GGY:GG",
        "GHA:GH",
        "GIB:GI",
        "GIN:GN",
        "GLP:GP",
        "GMB:GM",
        "GNB:GW",
        "GNQ:GQ",
        "GRC:GR",
        "GRD:GD",
        "GRL:GL",
        "GTM:GT",
        "GUF:GF",
        "GUM:GU",
        "GUY:GY",
        "HKG:HK",
        "HMD:HM",
        "HND:HN",
        "HRV:HR",
        "HTI:HT",
        "HUN:HU",
        "IDN:ID",
        "IMN:IM",
        "IND:IN",
        "IOT:IO",
        "IRL:IE",
        "IRN:IR",
        "IRQ:IQ",
        "ISL:IS",
        "ISR:IL",
        "ITA:IT",
        "JAM:JM",
        "JEY:JE",
        "JOR:JO",
        "JPN:JP",
        "KAZ:KZ",
        "KEN:KE",
        "KGZ:KG",
        "KHM:KH",
        "KIR:KI",
        "KNA:KN",
        "KOR:KR",
        "KWT:KW",
        "LAO:LA",
        "LBN:LB",
        "LBR:LR",
        "LBY:LY",
        "LCA:LC",
        "LIE:LI",
        "LKA:LK",
        "LSO:LS",
        "LTU:LT",
        "LUX:LU",
        "LVA:LV",
        "MAC:MO",
        "MAF:MF",
        "MAR:MA",
        "MCO:MC",
        "MDA:MD",
        "MDG:MG",
        "MDV:MV",
        "MEX:MX",
        "MHL:MH",
        "MKD:MK",
        "MLI:ML",
        "MLT:MT",
        "MMR:MM",
        "MNE:ME",
        "MNG:MN",
        "MNP:MP",
        "MOZ:MZ",
        "MRT:MR",
        "MSR:MS",
        "MTQ:MQ",
        "MUS:MU",
        "MWI:MW",
        "MYS:MY",
        "MYT:YT",
        "NAM:NA",
        "NCL:NC",
        "NER:NE",
        "NFK:NF",
        "NGA:NG",
        "NIC:NI",
        "NIU:NU",
        "NLD:NL",
        "NOR:NO",
        "NPL:NP",
        "NRU:NR",
        "NTZ:SA",
        "NZL:NZ",
        "OMN:OM",
        "PAK:PK",
        "PAN:PA",
        "PCN:PN",
        "PER:PE",
        "PHL:PH",
        "PLW:PW",
        "PNG:PG",
        "POL:PL",
        "PRI:PR",
        "PRK:KP",
        "PRT:PT",
        "PRY:PY",
        "PSE:PS",
        "PYF:PF",
        "QAT:QA",
        "REU:RE",
        "ROU:RO",
        "RUS:RU",
        "RWA:RW",
        "SAU:SA",
        "SCG:RS",
        "SDN:SD",
        "SEN:SN",
        "SGP:SG",
        "SGS:GS",
        "SHN:SH",
        "SJM:SJ",
        "SLB:SB",
        "SLE:SL",
        "SLV:SV",
        "SMR:SM",
        "SOM:SO",
        "SPM:PM",
        "SRB:RS",
        "SSD:SS",
        "STP:ST",
        "SUN:RU",
        "SUR:SR",
        "SVK:SK",
        "SVN:SI",
        "SWE:SE",
        "SWZ:SZ",
        "SXM:SX",
        "SYC:SC",
        "SYR:SY",
        "TCA:TC",
        "TCD:TD",
        "TGO:TG",
        "THA:TH",
        "TJK:TJ",
        "TKL:TK",
        "TKM:TM",
        "TLS:TL",
        "TMP:TL",
        "TON:TO",
        "TTO:TT",
        "TUN:TN",
        "TUR:TR",
        "TUV:TV",
        "TWN:TW",
        "TZA:TZ",
        "UGA:UG",
        "UKR:UA",
        "UMI:UM",
        "URY:UY",
        "USA:US",
        "UZB:UZ",
        "VAT:VA",
        "VCT:VC",
        "VEN:VE",
        "VGB:VG",
        "VIR:VI",
        "VNM:VN",
        "VUT:VU",
        "WLF:WF",
        "WSM:WS",
        "YEM:YE",
        "YMD:YE",
        "YUG:RS",
        "ZAF:ZA",
        "ZAR:CD",
        "ZMB:ZM",
        "ZWE:ZW",
    ]
)


@dataclass(frozen=True)
class Column:
    name: str
    dtype: DType = "str"
    required: bool = False
    enum: tuple[str, ...] | None = None
    description: str = ""
    #: A plan or a deadline (planned visit, planned activation, invoice due date) may lie after
    #: the delivery date; every other date records something that already happened.
    may_be_future: bool = False
    #: Counts, targets and amounts that cannot be negative (value.non_negative).
    non_negative: bool = False
    #: Free text an SMO types about a subject (reasons, deviation terms): it may carry health
    #: information, so BI users never see its values (retroactive_changes says only that it
    #: changed, delivery_log never quotes it); the warehouse keeps them.
    free_text: bool = False


@dataclass(frozen=True)
class Feed:
    name: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    #: Whether a delivery is a snapshot per study (rows carry study_id; each study's snapshot is
    #: current on its own). Other feeds are one snapshot for all studies (`'*'`): staffing (per
    #: SMO, no study_id) and the sponsor's actions (one list whose rows name their study).
    per_study: bool = True
    #: Who delivers the feed: an SMO, or the sponsor itself (sender `SPONSOR_ID`). SMO lists
    #: (coverage, freshness, profiles of SMOs) use `SMO_FEEDS`.
    sender: Literal["smo", "sponsor"] = "smo"
    #: Which roster the feed's site_id must appear in: "study" (same SMO and study), "smo" (any
    #: study of the same SMO) or None (no site reference).
    roster_reference: Literal["study", "smo"] | None = None
    description: str = ""
    _by_name: dict[str, Column] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({c.name: c for c in self.columns})

    def column(self, name: str) -> Column:
        return self._by_name[name]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def names_of(self, dtype: DType) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.dtype == dtype)

    @property
    def precision_columns(self) -> tuple[str, ...]:
        """`<date>_precision` (day, month, year): set when a profile reads ISO 8601 partial dates
        as their first day (`partial_dates: first_day`); not part of the delivery contract."""
        return tuple(f"{c}{PRECISION_SUFFIX}" for c in self.names_of("date"))


def _key(*names: str) -> tuple[Column, ...]:
    return tuple(Column(n, required=True) for n in names)


FEEDS: dict[str, Feed] = {
    f.name: f
    for f in (
        Feed(
            "sites",
            key=("smo_id", "study_id", "site_id"),
            description="Site roster per SMO and study.",
            columns=(
                *_key("smo_id", "study_id", "site_id"),
                Column("site_name", required=True),
                Column("country", required=True, description="ISO 3166-1 alpha-2"),
                Column("status", required=True, enum=SITE_STATUSES),
                Column("nct_id"),
                Column("city"),
                Column("principal_investigator"),
                Column("selected_date", "date"),
                Column("irb_approval_date", "date"),
                Column("contract_executed_date", "date"),
                Column("activation_date", "date", description="site initiation visit"),
                Column("closed_date", "date"),
                Column("target_enrollment", "int", non_negative=True),
                Column("planned_activation_date", "date", may_be_future=True),
            ),
        ),
        Feed(
            "subjects",
            key=("study_id", "site_id", "subject_id"),
            roster_reference="study",
            description="Subject status dates; subject ids are study pseudonyms.",
            columns=(
                Column("smo_id", required=True),
                *_key("study_id", "site_id", "subject_id"),
                Column("screened_date", "date", required=True),
                Column("consent_date", "date"),
                Column("screen_failed_date", "date"),
                Column("screen_fail_reason", free_text=True),
                Column("randomized_date", "date"),
                Column("discontinued_date", "date"),
                Column("discontinuation_reason", free_text=True),
                Column("completed_date", "date"),
                Column("screened_date_source", description="where screened_date came from"),
                # Demographics for representativeness (spec 3.2; SDTM DM); never a birth date.
                Column("sex", enum=SEX_TERMS, description="CDISC SEX"),
                Column("age", "int", non_negative=True, description="years (SDTM AGE)"),
                Column("age_group", description="age band when no age: 18-64 or 75+"),
                Column("race", enum=RACE_TERMS, description="CDISC RACE"),
                Column("ethnic", enum=ETHNIC_TERMS, description="CDISC ETHNIC (ethnicity)"),
            ),
        ),
        Feed(
            "visits",
            key=("study_id", "subject_id", "visit_id"),
            description="Subject visits with planned, actual and eCRF entry dates.",
            columns=(
                Column("smo_id", required=True),
                *_key("study_id", "subject_id", "visit_id"),
                Column("visit_name", required=True),
                Column("status", required=True, enum=VISIT_STATUSES),
                Column("planned_date", "date", may_be_future=True),
                Column("actual_date", "date"),
                Column("crf_entry_date", "date"),
            ),
        ),
        Feed(
            "deviations",
            key=("study_id", "deviation_id"),
            roster_reference="study",
            description="Protocol deviations.",
            columns=(
                Column("smo_id", required=True),
                *_key("study_id", "deviation_id"),
                Column("site_id", required=True),
                Column("category", required=True),
                Column("severity", required=True, enum=DEVIATION_SEVERITIES),
                Column("occurred_date", "date", required=True),
                Column("subject_id"),
                Column("term", free_text=True),
                Column("identified_date", "date"),
                Column("reported_date", "date"),
                Column("closed_date", "date"),
            ),
        ),
        Feed(
            "payments",
            key=("study_id", "payment_line_id"),
            roster_reference="study",
            description="Site payment lines.",
            columns=(
                Column("smo_id", required=True),
                *_key("study_id", "payment_line_id"),
                Column("site_id", required=True),
                Column("item_type", required=True, enum=PAYMENT_ITEM_TYPES),
                Column("amount", "float", required=True),
                Column("currency", required=True, description="ISO 4217"),
                Column("trigger_date", "date", description="the earning event"),
                Column("invoice_date", "date"),
                Column("due_date", "date", may_be_future=True),
                Column("paid_date", "date"),
                Column("holdback_amount", "float", non_negative=True),
                Column("credit_note", "bool", description="true allows a negative amount"),
            ),
        ),
        Feed(
            "staffing",
            key=("smo_id", "site_id", "crc_id", "start_date"),
            per_study=False,
            roster_reference="smo",
            description="CRC and site-manager assignments per site.",
            columns=(
                *_key("smo_id", "site_id", "crc_id"),
                Column("start_date", "date", required=True),
                Column("role", required=True, enum=STAFF_ROLES),
                Column("end_date", "date"),
                Column("fte", "float"),
            ),
        ),
        Feed(
            "oversight_actions",
            key=("action_id",),
            per_study=False,
            sender="sponsor",
            description="The sponsor's oversight actions on site flags, QTLs, SMOs and "
            "deliveries (spec 2.5); each delivery is the full current list for every study.",
            columns=(
                *_key("action_id", "study_id"),
                Column("target_type", required=True, enum=ACTION_TARGET_TYPES),
                Column("site_id", description="SITE_FLAG: the flagged site"),
                Column("kri_id", description="SITE_FLAG: the KRI (seeds/kri_definitions.csv)"),
                Column("qtl_id", description="QTL: the limit (seeds/qtl_definitions.csv)"),
                Column("target_smo_id", description="SMO (optional context for SITE_FLAG)"),
                Column("target_delivery_id", "int", description="DELIVERY: ops.deliveries id"),
                Column("opened_date", "date", required=True),
                Column("owner", required=True, description="a role or team, never a person"),
                # Sponsor-written text about oversight work, not an SMO's subject text: its
                # headers are checked for direct identifiers like every column's; its values
                # are the evidence the report shows.
                Column("action_text", required=True),
                Column("due_date", "date", required=True, may_be_future=True),
                Column("status", required=True, enum=ACTION_STATUSES),
                Column("closed_date", "date", description="required iff DONE or CANCELLED"),
                Column("outcome", description="what was concluded (a QTL evaluation's result)"),
            ),
        ),
    )
}

#: The feeds SMOs deliver: what SMO profiles, feed coverage and freshness expect from an SMO.
SMO_FEEDS = tuple(name for name, f in FEEDS.items() if f.sender == "smo")
#: The feeds only the sponsor delivers (sender `SPONSOR_ID`).
SPONSOR_FEEDS = tuple(name for name, f in FEEDS.items() if f.sender == "sponsor")

#: Canonical columns whose values are never published (the dbt var `free_text_columns` lists the
#: same names for the marts; tests/test_publish_gate.py keeps the two equal).
FREE_TEXT_COLUMNS = frozenset(c.name for f in FEEDS.values() for c in f.columns if c.free_text)

#: Feeds whose rows reference sites are loaded after the roster in the same batch.
FEED_LOAD_ORDER = (
    "sites",
    "subjects",
    "visits",
    "deviations",
    "payments",
    "staffing",
    "oversight_actions",
)
