{{ config(materialized='table') }}
-- CRC staffing and tenure per SMO site and as-of week. Turnover counts CRCs (role CRC) leaving in the 12
-- months before the as-of date per CRC headcount-year over the same window.
with assignments as (
    select
        *,
        greatest(start_date, as_of_date - interval 365 day)::date as window_start,
        least(coalesce(end_date, as_of_date), as_of_date) as window_end
    from {{ ref('int_snapshot__staffing') }}
    where start_date <= as_of_date
)

select
    as_of_date,
    smo_id,
    site_id,
    count(*) filter (
        where role = 'CRC' and end_date > as_of_date - interval 365 day and end_date <= as_of_date
    ) as crc_leavers_12m,
    coalesce(sum(greatest(0, date_diff('day', window_start, window_end)))
        filter (where role = 'CRC'), 0) / 365.25 as crc_headcount_years_12m,
    max(greatest(start_date, coalesce(end_date, start_date))) filter (where role = 'CRC')
        as last_crc_change_date,
    count(*) filter (where role = 'CRC' and (end_date is null or end_date >= as_of_date))
        as active_crcs,
    count(*) filter (where role = 'BACKUP_CRC' and (end_date is null or end_date >= as_of_date))
        as active_backup_crcs,
    -- tenure: days in post of the CRCs who left in the window, and of the CRC in post now
    avg(date_diff('day', start_date, end_date)) filter (
        where role = 'CRC' and end_date > as_of_date - interval 365 day and end_date <= as_of_date
    ) as departed_crc_tenure_days,
    max(date_diff('day', start_date, as_of_date)) filter (
        where role = 'CRC' and (end_date is null or end_date >= as_of_date)
    ) as current_crc_tenure_days,
    coalesce({{ exact_sum('fte',
        where="role in ('CRC', 'BACKUP_CRC') and (end_date is null or end_date >= as_of_date)") }}, 0) as active_crc_fte
from assignments
group by all
