{{ config(materialized='table') }}
{{ snapshot_as_of('deviations') }}
