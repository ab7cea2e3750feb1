{{ config(materialized='table') }}
-- Each subject's status timeline as of each week: where it stands on the as-of date (screening,
-- screen failed, randomized, discontinued, completed) and how long it has been on study
-- (screening to exit, or to the as-of date), the exposure behind per-subject-day rates.
select
    as_of_date,
    smo_id,
    study_id,
    site_id,
    subject_id,
    screened_date,
    randomized_date,
    case
        when completed_date is not null then 'COMPLETED'
        when discontinued_date is not null then 'DISCONTINUED'
        when randomized_date is not null then 'RANDOMIZED'
        when screen_failed_date is not null then 'SCREEN_FAILED'
        else 'SCREENING'
    end as status,
    screen_failed_date is not null as is_screen_failed,
    randomized_date is not null as is_randomized,
    discontinued_date is not null as is_discontinued,
    completed_date is not null as is_completed,
    coalesce(screen_failed_date, discontinued_date, completed_date) as exit_date,
    greatest(0, date_diff(
        'day',
        screened_date,
        least(as_of_date, coalesce(screen_failed_date, discontinued_date, completed_date, as_of_date))
    )) as days_on_study
from {{ ref('int_snapshot__subjects') }}
