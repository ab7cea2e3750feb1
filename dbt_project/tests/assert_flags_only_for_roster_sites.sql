{{ config(meta={'dagster': {'ref': {'name': 'site_risk_scores'}}}) }}
-- Every risk-scored site is a roster site of that week.
select r.*
from {{ ref('site_risk_scores') }} as r
left join {{ ref('int_snapshot__sites') }} as s using (as_of_date, smo_id, study_id, site_id)
where s.site_id is null
