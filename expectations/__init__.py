"""The rules data must satisfy, declared once: the canonical feeds (`feeds`), their pandera
contracts (`contracts`), direct-identifier headers (`identifiers`) and the great-expectations
publish gate built from the dbt project (`publish_gate`).

May import `core`; never Dagster or another package of the project.
"""
