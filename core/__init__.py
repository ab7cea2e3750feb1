"""The base every other package may import: project settings and the gate-results table.

`core` imports no other package of the project and never Dagster, dbt or great-expectations,
so ingest/, expectations/, publishing/, forecasting/, synthetic/, orchestration/ and cli/ can all
depend on it without creating a cycle.
"""
