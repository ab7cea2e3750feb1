"""Project-wide settings read from environment variables.

Every layer imports this module (ingest, publishing, orchestration, the CLI), so it imports
nothing of the project's and nothing third-party. Every variable is documented in
`.env.example`; relative paths are resolved against the project root, never the working
directory, so `make demo`, `dagster dev` and dbt all see the same files. Call `load_settings()`
when the value is needed (at run time), not at import.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def _path(environ: Mapping[str, str], name: str, default: str) -> Path:
    raw = environ.get(name) or default
    path = Path(raw).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


@dataclass(frozen=True)
class Settings:
    """Resolved paths. Build with `load_settings()` so tests can pass their own environment."""

    warehouse_path: Path
    #: How long a step waits for a foreign process (a read-only session) to release the
    #: warehouse before failing with a message naming it (seconds).
    warehouse_lock_wait_seconds: float
    data_dir: Path
    publish_dir: Path
    profiles_dir: Path
    #: Files modified more recently than this are assumed to be still being written.
    inbox_settle_seconds: float
    #: ClinicalTrials.gov: "replay" (offline, from registry_replay_dir) or "live".
    registry_mode: str
    registry_replay_dir: Path
    registry_base_url: str
    #: Extra NCT ids to follow besides those on the site rosters.
    registry_nct_ids: tuple[str, ...]
    peer_start_within_years: int
    peer_cohort_max: int
    #: Wall-clock bound on one registry fetch, retries and waits included (seconds).
    registry_budget_seconds: float
    #: Published BI databases kept (the current one included) under publish_dir/history, and
    #: Parquet sets under publish_dir/parquet/sets (at least two).
    publish_keep: int
    #: Publish gate: an SMO whose newest delivery is more days behind the as-of date blocks.
    freshness_max_days: int
    #: Weekly oversight refresh: cron expression and IANA time zone it is read in.
    weekly_cron: str
    schedule_timezone: str
    #: Run failures are posted here as JSON {"text": ...} when set (Slack/Teams-style webhook).
    alert_webhook_url: str
    #: Base URL of the Dagster UI, for links in alerts.
    dagster_ui_url: str
    #: Delivery gate, plausible dates: nothing before `date_window_earliest`, nothing more than
    #: `date_window_margin_days` before the study's first planned activation, no plan or due
    #: date more than `date_window_future_years` after the delivery date.
    date_window_earliest: dt.date
    date_window_margin_days: int
    date_window_future_years: int

    @property
    def warehouse_snapshot_path(self) -> Path:
        return snapshot_of(self.warehouse_path)

    @property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"


def snapshot_of(warehouse: Path) -> Path:
    """The read-only copy of a warehouse refreshed after every run (what engineers query):
    `warehouse.duckdb` -> `warehouse.snapshot.duckdb` beside it."""
    return warehouse.with_name(f"{warehouse.stem}.snapshot{warehouse.suffix or '.duckdb'}")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    data_dir = _path(env, "SMO_DATA_DIR", "var/data")
    return Settings(
        warehouse_path=_path(env, "SMO_WAREHOUSE_PATH", "var/warehouse.duckdb"),
        warehouse_lock_wait_seconds=float(env.get("SMO_WAREHOUSE_LOCK_WAIT_SECONDS") or 300),
        data_dir=data_dir,
        publish_dir=_path(env, "SMO_PUBLISH_DIR", "var/publish"),
        profiles_dir=_path(env, "SMO_PROFILES_DIR", str(data_dir / "profiles")),
        inbox_settle_seconds=float(env.get("SMO_INBOX_SETTLE_SECONDS") or 10),
        registry_mode=_choice(env, "SMO_REGISTRY_MODE", ("replay", "live")),
        registry_replay_dir=_path(env, "SMO_REGISTRY_REPLAY_DIR", str(data_dir / "registry")),
        registry_base_url=env.get("SMO_REGISTRY_BASE_URL") or "https://clinicaltrials.gov/api/v2",
        registry_nct_ids=tuple(
            i.strip().upper()
            for i in (env.get("SMO_REGISTRY_NCT_IDS") or "").split(",")
            if i.strip()
        ),
        peer_start_within_years=int(env.get("SMO_PEER_START_WITHIN_YEARS") or 10),
        peer_cohort_max=int(env.get("SMO_PEER_COHORT_MAX") or 200),
        registry_budget_seconds=float(env.get("SMO_REGISTRY_BUDGET_SECONDS") or 300),
        publish_keep=max(1, int(env.get("SMO_PUBLISH_KEEP") or 5)),
        freshness_max_days=int(env.get("SMO_FRESHNESS_MAX_DAYS") or 14),
        weekly_cron=env.get("SMO_WEEKLY_CRON") or "0 6 * * 1",
        schedule_timezone=env.get("SMO_SCHEDULE_TIMEZONE") or "UTC",
        alert_webhook_url=env.get("SMO_ALERT_WEBHOOK_URL") or "",
        dagster_ui_url=(env.get("SMO_DAGSTER_UI_URL") or "http://127.0.0.1:3000").rstrip("/"),
        date_window_earliest=dt.date.fromisoformat(
            env.get("SMO_DATE_WINDOW_EARLIEST") or "2000-01-01"
        ),
        date_window_margin_days=int(env.get("SMO_DATE_WINDOW_MARGIN_DAYS") or 730),
        date_window_future_years=int(env.get("SMO_DATE_WINDOW_FUTURE_YEARS") or 15),
    )


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = (environ.get(name) or allowed[0]).strip().lower()
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
    return value
