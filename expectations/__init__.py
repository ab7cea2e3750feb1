"""The rules data must satisfy, declared once: the canonical feeds (`feeds`), their pandera
contracts (`contracts`), direct-identifier headers (`identifiers`) and the great-expectations
publish gate built from the dbt project (`publish_gate`), its suites evaluated as SQL (`gx_sql`).

May import `core`; never Dagster or another package of the project.
"""
