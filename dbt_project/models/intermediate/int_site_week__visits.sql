{{ config(materialized='table') }}
-- Visit completion and visit-to-entry lag per site and as-of week. A visit is due for entry once
-- it is entered or has waited more than 10 days; waiting visits count as late (gsm kri0010).
select
    as_of_date,
    smo_id,
    study_id,
    site_id,
    count(*) filter (where status = 'COMPLETED') as visits_completed,
    count(*) filter (where status = 'MISSED') as visits_missed,
    count(*) filter (where actual_date is not null and crf_entry_date is not null) as visits_entered,
    sum(date_diff('day', actual_date, crf_entry_date)) as entry_lag_days_total,
    count(*) filter (
        where actual_date is not null
        and (crf_entry_date is not null or date_diff('day', actual_date, as_of_date) > 10)
    ) as visits_due_for_entry,
    count(*) filter (
        where actual_date is not null
        and date_diff('day', actual_date, coalesce(crf_entry_date, as_of_date)) > 10
    ) as visits_entered_late,
    count(*) filter (where actual_date is not null and crf_entry_date is null) as visits_awaiting_entry
from {{ ref('int_snapshot__visits') }}
where site_id is not null
group by all
