-- Every site KRI per as-of week with its funnel z-score and flag, compared with the other sites
-- of the same study ('study') and with all sites of the portfolio across SMOs ('portfolio').
-- A KRI whose inputs the SMO did not deliver is flag 'no_data' with no_data_reason and takes no
-- part in its group's rate or over-dispersion.
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
    -- a KRI whose inputs were not delivered raises no flag: 'no_data', with the reason
    select * replace (case when no_data_reason is not null then 'no_data' else flag end as flag)
    from (
        select * from within_study
        union all by name
        select * from across_smos
    )
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
    no_data_reason,
    weight,
    {{ flag_points('flag', 'weight') }} as flag_points
from flags
