{{ config(materialized='table') }}
-- Every KPI per as-of week at site, study, SMO, SMO x study, country and portfolio level, as a
-- ratio of sums of the site numerators and denominators.
with rolled as (
    select
        as_of_date,
        case
            when grouping(site_id) = 0 then 'site'
            when grouping(smo_id) = 0 and grouping(study_id) = 0 then 'smo_study'
            when grouping(study_id) = 0 then 'study'
            when grouping(smo_id) = 0 then 'smo'
            when grouping(country) = 0 then 'country'
            else 'portfolio'
        end as level,
        smo_id,
        study_id,
        site_id,
        country,
        kpi_id,
        {{ exact_sum('numerator') }} as numerator,
        {{ exact_sum('denominator') }} as denominator,
        any_value(multiplier) as multiplier,
        count(*) filter (where denominator > 0) as sites_contributing
    from {{ ref('int_site_week__kpi_inputs') }}
    group by grouping sets (
        (as_of_date, kpi_id, smo_id, study_id, site_id, country),
        (as_of_date, kpi_id, smo_id, study_id),
        (as_of_date, kpi_id, study_id),
        (as_of_date, kpi_id, smo_id),
        (as_of_date, kpi_id, country),
        (as_of_date, kpi_id)
    )
)

select
    *,
    {{ safe_ratio('numerator', 'denominator', 'multiplier') }} as value
from rolled
