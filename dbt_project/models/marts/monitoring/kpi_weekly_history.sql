-- Every KPI per as-of week at site, SMO x study, study, SMO, country and portfolio level.
select * from {{ ref('int_kpi__rollups') }}
