-- Site risk score per as-of week from the within-study flags: points of the site's flags
-- (red = the KRI's weight, amber = half) / the sum of all site KRI weights x 100.
with flags as (
    select * from {{ ref('site_flags') }} where comparison_group = 'study'
),

max_points as (
    select sum(weight) as max_points from {{ ref('kri_definitions') }} where level = 'site'
)

select
    f.as_of_date,
    f.smo_id,
    f.study_id,
    f.site_id,
    any_value(f.country) as country,
    count(*) filter (where f.flag = 'red')::integer as red_flags,
    count(*) filter (where f.flag = 'amber')::integer as amber_flags,
    count(*) filter (where f.flag = 'not_evaluated')::integer as kris_not_evaluated,
    coalesce(string_agg(f.kri_id, ', ' order by f.kri_id) filter (where f.flag = 'red'), '')
        as red_kris,
    coalesce(string_agg(f.kri_id, ', ' order by f.kri_id) filter (where f.flag = 'amber'), '')
        as amber_kris,
    round({{ exact_sum('f.flag_points') }} / any_value(m.max_points) * 100, 1) as risk_score,
    case
        when count(*) filter (where f.flag = 'red') > 0 then 'red'
        when count(*) filter (where f.flag = 'amber') > 0 then 'amber'
        else 'green'
    end as risk_level,
    string_agg(distinct f.kri_version, ', ' order by f.kri_version) as kri_versions
from flags as f
cross join max_points as m
group by f.as_of_date, f.smo_id, f.study_id, f.site_id
