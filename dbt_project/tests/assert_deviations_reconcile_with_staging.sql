{{ config(meta={'dagster': {'ref': {'name': 'site_deviations'}}}) }}
-- Every current deviation is counted once in the deviation mart.
with marts as (
    select smo_id, study_id, sum(deviations) as deviations from {{ ref('site_deviations') }} group by all
),

staging as (
    select smo_id, study_id, count(*) as deviations from {{ ref('stg_smo__deviations') }} group by all
)

select *
from staging as s
left join marts as m using (smo_id, study_id)
where m.deviations is distinct from s.deviations
