"""Dagster: the only package that imports it.

- Entry points: `definitions` (the code location), `demo` (`make demo`), `instance`
  (DAGSTER_HOME and its dagster.yaml).
- `defs/`: loaded automatically by `definitions`; one module per part of the graph (deliveries,
  registry, dbt models, publish) plus `automation` (jobs, schedule, sensors) and `resources`.
- `lib/`: helpers the defs share (dbt project and translator, the warehouse resource and writer
  pool, the rebuild fingerprint, check results as gate evidence).

May import every other package; nothing imports `orchestration`.
"""
