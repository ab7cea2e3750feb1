"""The synthetic SMO portfolio: studies, sites and subjects with planted signals, written in four
export dialects with their profiles, registry fixtures and a catalogue of bad deliveries.

Used by `make demo`, the tests and the benchmark. May import `core`, `expectations` and
`ingest.registry` (to write replay fixtures); never Dagster or `orchestration`.
"""
