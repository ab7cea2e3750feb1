-- CRC staffing per SMO site in the latest as-of week, one row per site on the SMO's rosters. A
-- site whose SMO delivers no staffing feed has null counts and KPIs (never 0, never "no backup
-- CRC") and a no_data_reason.
with roster as (
    select distinct as_of_date, smo_id, site_id
    from {{ ref('int_site_week__enrollment') }}
    where {{ latest_week() }}
),

feed as (
    -- staffing is delivered per SMO: one status per SMO (contracted for any of its studies)
    select as_of_date, smo_id, bool_or(is_delivered) as is_delivered,
        min(no_data_reason) as no_data_reason
    from {{ ref('int_smo_week__feed_coverage') }}
    where feed = 'staffing'
    group by all
),

staffing as (
    select * from {{ ref('int_site_week__staffing') }} where {{ latest_week() }}
)

select
    r.as_of_date,
    r.smo_id,
    r.site_id,
    s.crc_leavers_12m::integer as crc_leavers_12m,
    s.crc_headcount_years_12m,
    {{ safe_ratio('s.crc_leavers_12m', 's.crc_headcount_years_12m') }} as crc_turnover,
    s.last_crc_change_date,
    date_diff('day', s.last_crc_change_date, s.as_of_date) as days_since_crc_change,
    s.departed_crc_tenure_days,
    s.current_crc_tenure_days::integer as current_crc_tenure_days,
    s.active_crcs::integer as active_crcs,
    s.active_backup_crcs::integer as active_backup_crcs,
    s.active_backup_crcs = 0 as has_no_backup_crc,
    s.active_crc_fte,
    case
        when not f.is_delivered then f.no_data_reason
        when s.site_id is null then 'no staffing rows for this site'
    end as no_data_reason
from roster as r
left join feed as f using (as_of_date, smo_id)
left join staffing as s using (as_of_date, smo_id, site_id)
