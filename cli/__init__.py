"""The `smo-oversight` command line (onboarding checks, synthetic data).

A package of its own because it joins two that must not know each other: the delivery gate
(`ingest`) and the generator (`synthetic`, which writes registry fixtures with `ingest`'s
replay writer). Nothing imports `cli`.
"""
