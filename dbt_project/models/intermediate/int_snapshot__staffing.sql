{{ config(materialized='table') }}
{{ snapshot_as_of('staffing', per_study=false) }}
