-- Protocol deviations per site in the latest as-of week.
with counts as (
    select
        e.as_of_date, e.smo_id, e.study_id, e.site_id, e.subject_days,
        coalesce(d.deviations, 0) as deviations,
        coalesce(d.important_deviations, 0) as important_deviations,
        coalesce(d.open_deviations, 0) as open_deviations,
        d.oldest_open_deviation_days
    from {{ ref('int_site_week__enrollment') }} as e
    left join {{ ref('int_site_week__deviations') }} as d using (as_of_date, smo_id, study_id, site_id)
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
    c.oldest_open_deviation_days::integer as oldest_open_deviation_days
from counts as c
join kpis as k using (as_of_date, smo_id, study_id, site_id)
