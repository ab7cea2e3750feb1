"""Helpers for the Dagster definitions (not definitions themselves, so not under `defs/`):

- `dbt`: the DbtProject, the translator (asset key = [schema, table]), the prepared manifest.
- `warehouse`: the DuckDB resource and the single-writer pool.
- `rebuild_fingerprint`: whether anything dbt reads changed since the last passing build.
- `gate_evidence`: asset check results as `ops.gate_results` rows.
"""
