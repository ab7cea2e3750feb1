-- Every site KRI per as-of week with its funnel z-score and flag, compared with the other sites
-- of the same study ('study') and with all sites of the portfolio across SMOs ('portfolio').
with site_kpis as (
    select * from {{ ref('int_site_week__kpi_inputs') }}
),

within_study as (
    {{ funnel_flags('site_kpis', 'site', ['study_id'], 'study') }}
),

across_smos as (
    {{ funnel_flags('site_kpis', 'site', [], 'portfolio') }}
),

flags as (
    select * from within_study
    union all by name
    select * from across_smos
)

select
    as_of_date,
    comparison_group,
    smo_id,
    study_id,
    site_id,
    country,
    kri_id,
    kri_version,
    method,
    kri_type,
    direction,
    numerator,
    denominator,
    value,
    group_value,
    overdispersion,
    z_score_unadjusted,
    z_score,
    amber_threshold,
    red_threshold,
    min_denominator,
    flag,
    weight,
    {{ flag_points('flag', 'weight') }} as flag_points
from flags
