-- Visit-to-entry timeliness per site in the latest as-of week. Without a visits feed, or when the
-- SMO's visits carry no data-entry dates, the entry counts and KPIs are null (never "every visit
-- late") and no_data_reason says why.
with counts as (
    select
        e.as_of_date, e.smo_id, e.study_id, e.site_id,
        case when f.is_delivered then coalesce(v.visits_completed, 0) end as visits_completed,
        coalesce(v.visits_entered, 0) as visits_entered,
        coalesce(v.visits_awaiting_entry, 0) as visits_awaiting_entry,
        coalesce(v.visits_entered_late, 0) as visits_entered_late
    from {{ ref('int_site_week__enrollment') }} as e
    left join {{ ref('int_site_week__visits') }} as v using (as_of_date, smo_id, study_id, site_id)
    left join {{ ref('int_smo_week__feed_coverage') }} as f
        on f.as_of_date = e.as_of_date and f.smo_id = e.smo_id and f.study_id = e.study_id
        and f.feed = 'visits'
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
    case when k.no_data_reason is null then c.visits_entered::integer end as visits_entered,
    case when k.no_data_reason is null then c.visits_awaiting_entry::integer end
        as visits_awaiting_entry,
    case when k.no_data_reason is null then c.visits_entered_late::integer end
        as visits_entered_late,
    k.entry_lag_mean_days,
    k.entry_lag_over_10d_share,
    k.no_data_reason
from counts as c
join kpis as k using (as_of_date, smo_id, study_id, site_id)
