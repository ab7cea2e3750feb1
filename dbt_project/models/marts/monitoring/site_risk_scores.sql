-- Site risk score per as-of week from the within-study flags: points of the site's flags
-- (red = the KRI's weight, amber = half) / the sum of the weights of the site KRIs that had data
-- x 100. A KRI without data (flag no_data) adds nothing, to the points or the maximum;
-- kris_with_data says how many KRIs the score was computed from (NULL, never NaN, when
-- no KRI had data or every weight is 0).
with flags as (
    select * from {{ ref('site_flags') }} where comparison_group = 'study'
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
    count(*) filter (where f.flag <> 'no_data')::integer as kris_with_data,
    count(*) filter (where f.flag = 'no_data')::integer as kris_no_data,
    coalesce(string_agg(f.kri_id, ', ' order by f.kri_id) filter (where f.flag = 'no_data'), '')
        as no_data_kris,
    round(
        {{ exact_sum('f.flag_points', "f.flag <> 'no_data'") }}
        / nullif({{ exact_sum('f.weight', "f.flag <> 'no_data'") }}, 0) * 100,
        1
    ) as risk_score,
    case
        when count(*) filter (where f.flag = 'red') > 0 then 'red'
        when count(*) filter (where f.flag = 'amber') > 0 then 'amber'
        when count(*) filter (where f.flag <> 'no_data') = 0 then 'no_data'
        else 'green'
    end as risk_level,
    string_agg(distinct f.kri_version, ', ' order by f.kri_version) as kri_versions
from flags as f
group by f.as_of_date, f.smo_id, f.study_id, f.site_id
