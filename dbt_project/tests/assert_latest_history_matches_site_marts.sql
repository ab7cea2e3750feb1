{{ config(meta={'dagster': {'ref': {'name': 'kpi_weekly_history'}}}) }}
-- The weekly history's latest week is the same number the current site marts show.
select h.smo_id, h.study_id, h.site_id, h.value, e.screen_failure_rate
from {{ ref('kpi_weekly_history') }} as h
join {{ ref('site_enrollment') }} as e using (as_of_date, smo_id, study_id, site_id)
where h.level = 'site' and h.kpi_id = 'screen_failure_rate'
    and h.value is distinct from e.screen_failure_rate
