"""Statistical methods that dbt Python models call (the Poisson-Gamma enrollment forecast).

Pure functions over Arrow/pandas frames: imports nothing of the project, never Dagster.
"""
