-- Every KPI per as-of week at site, SMO x study, study, SMO, country and portfolio level, plus
-- the sponsor's escalation KPI unattended_signals per SMO and study (macros/escalation.sql).
with rollups as (
    select * from {{ ref('int_kpi__rollups') }}
),

unattended_smo as (
    {{ unattended_kpi('smo', "(select distinct as_of_date, smo_id from rollups where level = 'smo')") }}
),

unattended_study as (
    {{ unattended_kpi('study', "(select distinct as_of_date, study_id from rollups where level = 'study')") }}
)

select * from rollups
union all by name
select 'smo' as level, *, 1::double as multiplier, case when no_data_reason is null then numerator end as value
from unattended_smo
union all by name
select 'study' as level, *, 1::double as multiplier, case when no_data_reason is null then numerator end as value
from unattended_study
