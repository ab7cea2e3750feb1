{{ config(materialized='table') }}
-- Protocol deviation counts and lags per site and as-of week.
select
    as_of_date,
    smo_id,
    study_id,
    site_id,
    count(*) as deviations,
    count(*) filter (where severity = 'IMPORTANT') as important_deviations,
    count(*) filter (where severity = 'IMPORTANT' and category ilike 'eligib%')
        as important_eligibility_deviations,
    count(identified_date) as deviations_identified,
    sum(date_diff('day', occurred_date, identified_date)) as identification_days_total,
    count(reported_date) as deviations_reported,
    sum(date_diff('day', identified_date, reported_date)) as reporting_days_total,
    count(*) filter (where closed_date is null) as open_deviations,
    sum(date_diff('day', coalesce(identified_date, occurred_date), as_of_date))
        filter (where closed_date is null) as open_deviation_age_days_total,
    max(date_diff('day', coalesce(identified_date, occurred_date), as_of_date))
        filter (where closed_date is null) as oldest_open_deviation_days
from {{ ref('int_snapshot__deviations') }}
group by all
