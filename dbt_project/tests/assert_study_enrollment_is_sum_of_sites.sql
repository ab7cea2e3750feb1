{{ config(meta={'dagster': {'ref': {'name': 'study_enrollment'}}}) }}
-- The study roll-up of randomized subjects equals the sum over its sites.
select s.study_id, s.subjects_randomized, sum(e.subjects_randomized) as sum_of_sites
from {{ ref('study_enrollment') }} as s
join {{ ref('site_enrollment') }} as e using (study_id)
group by all
having s.subjects_randomized <> sum(e.subjects_randomized)
