"""ClinicalTrials.gov registry: API v2 client, offline sources and flattening (no Dagster).

- `client`: `RegistryClient` (live HTTP), `RegistryError`, `SearchResult`, `FetchResult`.
- `queries`: Essie builders: incremental fetches (`incremental_search`) and peer cohorts.
- `sources`: `ReplaySource` (offline replay directory), `write_replay_dir`, website exports.
- `flatten`: `flatten_studies(records) -> RegistryTables` (polars DataFrames).
"""

from ingest.registry.client import (
    DEFAULT_BASE_URL,
    STUDY_FIELDS,
    FetchResult,
    RegistryClient,
    RegistryError,
    RegistrySource,
    RequestStats,
    SearchResult,
)
from ingest.registry.queries import (
    IncrementalResult,
    combine_advanced,
    incremental_params,
    incremental_search,
    peer_cohort_params,
    search_peer_cohort,
    updated_since_filter,
    with_advanced,
)
from ingest.registry.sources import (
    ReplaySource,
    iter_bulk_zip,
    iter_export,
    iter_json_download,
    write_replay_dir,
)

#: Flattening needs polars: imported on first use, so loading the Dagster definitions (which
#: only needs the client and the store) does not import it.
_FLATTEN = (
    "RegistryTables",
    "flatten_studies",
    "normalise_facility",
    "normalise_mesh_id",
    "parse_partial_date",
)


def __getattr__(name: str):
    if name in _FLATTEN:
        from ingest.registry import flatten

        return getattr(flatten, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_BASE_URL",
    "STUDY_FIELDS",
    "FetchResult",
    "IncrementalResult",
    "RegistryClient",
    "RegistryError",
    "RegistrySource",
    "RegistryTables",
    "ReplaySource",
    "RequestStats",
    "SearchResult",
    "combine_advanced",
    "flatten_studies",
    "incremental_params",
    "incremental_search",
    "iter_bulk_zip",
    "iter_export",
    "iter_json_download",
    "normalise_facility",
    "normalise_mesh_id",
    "parse_partial_date",
    "peer_cohort_params",
    "search_peer_cohort",
    "updated_since_filter",
    "with_advanced",
    "write_replay_dir",
]
