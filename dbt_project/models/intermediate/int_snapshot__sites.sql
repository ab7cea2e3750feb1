{{ config(materialized='table') }}
{{ snapshot_as_of('sites') }}
