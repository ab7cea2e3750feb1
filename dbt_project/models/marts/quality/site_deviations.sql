-- Protocol deviations per site in the latest as-of week. Without a deviations feed the counts
-- are null, not 0, and no_data_reason says why.
with counts as (
    select
        e.as_of_date, e.smo_id, e.study_id, e.site_id, e.subject_days,
        case when f.is_delivered then coalesce(d.deviations, 0) end as deviations,
        case when f.is_delivered then coalesce(d.important_deviations, 0) end as important_deviations,
        case when f.is_delivered then coalesce(d.open_deviations, 0) end as open_deviations,
        d.oldest_open_deviation_days
    from {{ ref('int_site_week__enrollment') }} as e
    left join {{ ref('int_site_week__deviations') }} as d using (as_of_date, smo_id, study_id, site_id)
    left join {{ ref('int_smo_week__feed_coverage') }} as f
        on f.as_of_date = e.as_of_date and f.smo_id = e.smo_id and f.study_id = e.study_id
        and f.feed = 'deviations'
    where {{ latest_week('e.as_of_date') }}
),

kpis as (
    {{ latest_site_kpis(['deviations_per_visit', 'important_deviation_rate',
            'important_deviation_share', 'deviation_identification_days',
            'deviation_reporting_days', 'open_deviation_age_days']) }}
)

select
    c.as_of_date,
    c.smo_id,
    c.study_id,
    c.site_id,
    c.deviations::integer as deviations,
    c.important_deviations::integer as important_deviations,
    c.subject_days::bigint as subject_days,
    k.deviations_per_visit,
    k.important_deviation_rate,
    k.important_deviation_share,
    k.deviation_identification_days,
    k.deviation_reporting_days,
    c.open_deviations::integer as open_deviations,
    k.open_deviation_age_days,
    c.oldest_open_deviation_days::integer as oldest_open_deviation_days,
    k.no_data_reason
from counts as c
join kpis as k using (as_of_date, smo_id, study_id, site_id)
