"""ClinicalTrials.gov registry: the portfolio's studies and their peer cohorts, versioned.

Offline replay of recorded responses is the default (`SMO_REGISTRY_MODE=replay`, reading the
generator's synthetic fixtures); `live` calls the API v2 with retries, backoff and about one
request per second, the whole fetch bounded by `SMO_REGISTRY_BUDGET_SECONDS`. A registry that
fails (unreachable, over budget, an unreadable response, the `/version` call included) never
blocks the SMO marts: nothing of that fetch is stored, the step succeeds with the previous
snapshot, the `registry_current` check warns with the error, and the publish marks the registry
data stale (`meta.registry_stale`, the report) until a fetch succeeds again. One failing study
lookup or peer-cohort search fails alone: it is recorded (`registry.fetches.failures`: studies,
request, error), `registry_current` warns naming the study, that study's previous records and
cohort stay in use, everything else is stored, and the next run asks for it again in full.
"""

import dagster as dg

from core.settings import load_settings
from ingest.registry import RegistryClient, RegistryError, ReplaySource
from ingest.registry import store as registry_store
from orchestration.defs.smo_deliveries import RAW_KEYS
from orchestration.lib.warehouse import WAREHOUSE_WRITER_POOL, DuckDBWarehouse

RAW_STUDIES_KEY = dg.AssetKey(["registry", "raw_studies"])
FLAT_KEYS = {name: dg.AssetKey(["registry", name]) for name in registry_store.FLAT_TABLES}
CURRENT_CHECK = "registry_current"
DESCRIPTIONS = {
    "studies": "One row per registry study (newest version): status, phases, enrollment, dates "
    "with precision, sponsor, location count, role (portfolio or peer).",
    "locations": "Registry locations: facility raw and normalised for matching, city, country, "
    "zip as text.",
    "conditions": "Reported conditions and MeSH terms (ids normalised, raw kept).",
    "interventions": "Interventions per study.",
    "sponsors": "Lead sponsor and collaborators per study.",
}


def _source(settings):
    if settings.registry_mode == "live":
        client = RegistryClient(
            base_url=settings.registry_base_url, budget_seconds=settings.registry_budget_seconds
        )
        return client, settings.registry_base_url
    return ReplaySource(settings.registry_replay_dir), f"replay:{settings.registry_replay_dir}"


def _current(passed: bool, description: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=RAW_STUDIES_KEY,
        check_name=CURRENT_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
    )


def _flat_results(counts: dict[str, int]):
    for name, key in FLAT_KEYS.items():
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": counts[name]})


@dg.multi_asset(
    name="registry_studies",
    specs=[
        dg.AssetSpec(
            RAW_STUDIES_KEY,
            group_name="registry",
            kinds={"duckdb", "python"},
            deps=[RAW_KEYS["sites"]],
            description="Every version of every fetched registry record (JSON), with the "
            "registry's data timestamp and fetch time; registry.fetches logs each run.",
        ),
        *[
            dg.AssetSpec(
                key,
                group_name="registry",
                kinds={"duckdb"},
                deps=[RAW_STUDIES_KEY],
                description=DESCRIPTIONS[name],
            )  # fmt: skip
            for name, key in FLAT_KEYS.items()
        ],
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CURRENT_CHECK,
            asset=RAW_STUDIES_KEY,
            description="The registry answered every request of this run (WARN: when it did "
            "not, the marts are built and published with the previous snapshot, marked stale; "
            "when one study's request failed, that study's previous records stay in use).",
        )
    ],
    pool=WAREHOUSE_WRITER_POOL,
    description="Fetches the portfolio's registry records and peer cohorts (incrementally).",
)
def registry_studies(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse):
    settings = load_settings()
    source, source_name = _source(settings)
    with warehouse.connect() as con:
        registry_store.ensure_schema(con)
        portfolio_ids = sorted(
            set(registry_store.roster_nct_ids(con)) | set(settings.registry_nct_ids)
        )
        since = registry_store.previous_data_timestamp(con)
        stored = {
            nct_id: record
            for nct_id, (role, record) in registry_store.latest_records(con).items()
            if role == "portfolio"
        }
        retry = registry_store.previous_failures(con) if since is not None else []
        try:
            stamp = None
            if since is not None and set(portfolio_ids) <= set(stored) and not retry:
                stamp = source.data_timestamp()
            if stamp is None or stamp != since:
                summary = registry_store.fetch_registry(
                    source,
                    portfolio_ids,
                    since=since,
                    stored=stored,
                    peer_start_within_years=settings.peer_start_within_years,
                    peer_cohort_max=settings.peer_cohort_max,
                    retry=retry,
                )
        except RegistryError as exc:
            # The client already retried within its budget; nothing of this fetch is stored.
            message = f"ClinicalTrials.gov fetch failed, nothing stored: {exc}"
            registry_store.record_failure(
                con, source_name=source_name, error=str(exc), run_id=context.run_id
            )
            built = registry_store.flat_table_counts(con)
            counts = built if all(built.values()) else registry_store.rebuild_flat_tables(con)
            context.log.warning(
                f"{message}. The SMO marts are built and published with the previous registry "
                f"snapshot (data timestamp {since or 'none: never fetched'}), marked stale."
            )
            yield dg.MaterializeResult(
                asset_key=RAW_STUDIES_KEY,
                metadata={"data_timestamp": since or "never fetched", "mode":
                          settings.registry_mode, "stale": True, "error": message,
                          "records_fetched": 0},
            )  # fmt: skip
            yield from _flat_results(counts)
            yield _current(False, message)
            return
        if stamp is not None and stamp == since:
            # The registry has not changed since the last fetch (its dataTimestamp moves with
            # every update), and no new study joined the rosters: nothing to ask.
            context.log.info(f"registry data unchanged since {since}: nothing fetched")
            registry_store.resolve_failures(con)
            yield dg.MaterializeResult(
                asset_key=RAW_STUDIES_KEY,
                metadata={"data_timestamp": stamp, "mode": settings.registry_mode,
                          "unchanged_since": since, "records_fetched": 0},
            )  # fmt: skip
            yield from _flat_results(registry_store.flat_table_counts(con))
            yield _current(True, f"registry data unchanged since {since}")
            return
        stats = source.stats
        new_versions = registry_store.store(
            con, summary, source_name=source_name, requests=stats.requests, retries=stats.retries
        )
        counts = registry_store.rebuild_flat_tables(con)
        registry_store.resolve_failures(con)
    for problem in summary.count_mismatches:
        context.log.warning(f"registry count mismatch: {problem}")
    if summary.missing_ids:
        context.log.warning(f"not in the registry: {', '.join(summary.missing_ids)}")
    partial = None
    if summary.failures:
        partial = (
            f"{len(summary.failures)} registry request(s) failed; the previous records and peer "
            f"cohorts of these studies stay in use and are asked again next run: "
            f"{summary.describe_failures()}"
        )
        context.log.warning(partial)
    yield dg.MaterializeResult(
        asset_key=RAW_STUDIES_KEY,
        metadata={
            "data_timestamp": summary.data_timestamp,
            "mode": settings.registry_mode,
            "incremental_since": summary.since or "full fetch",
            "portfolio_studies_requested": len(summary.portfolio_ids),
            "portfolio_studies_missing": len(summary.missing_ids),
            "peer_searches": summary.peer_searches,
            "records_fetched": len(summary.records),
            "new_record_versions": new_versions,
            "requests": stats.requests,
            "retries": stats.retries,
            "failed_requests": len(summary.failures),
        },
    )
    yield from _flat_results(counts)
    yield _current(partial is None, partial or f"registry data as of {summary.data_timestamp}")
