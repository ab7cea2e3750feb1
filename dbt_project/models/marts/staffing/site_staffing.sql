-- CRC staffing per SMO site in the latest as-of week (SMOs that deliver no staffing feed have
-- no rows).
select
    as_of_date,
    smo_id,
    site_id,
    crc_leavers_12m::integer as crc_leavers_12m,
    crc_headcount_years_12m,
    {{ safe_ratio('crc_leavers_12m', 'crc_headcount_years_12m') }} as crc_turnover,
    last_crc_change_date,
    date_diff('day', last_crc_change_date, as_of_date) as days_since_crc_change,
    departed_crc_tenure_days,
    current_crc_tenure_days::integer as current_crc_tenure_days,
    active_crcs::integer as active_crcs,
    active_backup_crcs::integer as active_backup_crcs,
    active_backup_crcs = 0 as has_no_backup_crc,
    active_crc_fte
from {{ ref('int_site_week__staffing') }}
where {{ latest_week() }}
