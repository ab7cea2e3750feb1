"""The base every other package may import: project settings, the gate-results table and the
Markdown/HTML table writers (`tables`).

`core` imports no other package of the project and never Dagster, dbt or great-expectations,
so ingest/, expectations/, publishing/, forecasting/, synthetic/, orchestration/ and cli/ can all
depend on it without creating a cycle.
"""
