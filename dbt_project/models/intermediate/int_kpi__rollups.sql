{{ config(materialized='table') }}
-- Every KPI per as-of week at site, study, SMO, SMO x study, country and portfolio level, as a
-- ratio of sums of the site numerators and denominators. Sites without the KPI's inputs add
-- nothing; a level none of whose sites had them carries their no_data_reason.
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
        count(*) filter (where denominator > 0) as sites_contributing,
        count(*) filter (where no_data_reason is not null) as sites_without_data,
        -- no data at this level only when no site of it had the KPI's inputs
        case when count(*) filter (where no_data_reason is null) = 0
            then string_agg(distinct no_data_reason, '; ' order by no_data_reason)
        end as no_data_reason
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
