{{ config(meta={'dagster': {'ref': {'name': 'site_enrollment'}}}) }}
-- Warehouse gate: subjects screened and randomized in the enrollment marts equal the current
-- subject snapshots in staging, per SMO and study (none lost or double counted on the way).
with marts as (
    select smo_id, study_id, sum(subjects_screened) as screened, sum(subjects_randomized) as randomized
    from {{ ref('site_enrollment') }}
    group by all
),

staging as (
    select smo_id, study_id, count(*) as screened, count(randomized_date) as randomized
    from {{ ref('stg_smo__subjects') }}
    group by all
)

select *
from marts as m
full join staging as s using (smo_id, study_id)
where m.screened is distinct from s.screened or m.randomized is distinct from s.randomized
