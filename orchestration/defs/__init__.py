"""Loaded by `dg.load_from_defs_folder`: every asset, check, job, schedule, sensor and resource
of the code location. Helpers that are not definitions live in `orchestration/lib/`."""
