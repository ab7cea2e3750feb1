-- Visit-to-entry timeliness per site in the latest as-of week.
with counts as (
    select
        e.as_of_date, e.smo_id, e.study_id, e.site_id,
        coalesce(v.visits_completed, 0) as visits_completed,
        coalesce(v.visits_entered, 0) as visits_entered,
        coalesce(v.visits_awaiting_entry, 0) as visits_awaiting_entry,
        coalesce(v.visits_entered_late, 0) as visits_entered_late
    from {{ ref('int_site_week__enrollment') }} as e
    left join {{ ref('int_site_week__visits') }} as v using (as_of_date, smo_id, study_id, site_id)
    where {{ latest_week('e.as_of_date') }}
),

kpis as (
    {{ latest_site_kpis(['entry_lag_mean_days', 'entry_lag_over_10d_share']) }}
)

select
    c.as_of_date,
    c.smo_id,
    c.study_id,
    c.site_id,
    c.visits_completed::integer as visits_completed,
    c.visits_entered::integer as visits_entered,
    c.visits_awaiting_entry::integer as visits_awaiting_entry,
    c.visits_entered_late::integer as visits_entered_late,
    k.entry_lag_mean_days,
    k.entry_lag_over_10d_share
from counts as c
join kpis as k using (as_of_date, smo_id, study_id, site_id)
