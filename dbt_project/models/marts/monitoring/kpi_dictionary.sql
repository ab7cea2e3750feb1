-- Every KPI and KRI a BI reader meets, in one table: readable name, unit, how to display the value
-- and, for KRIs, the thresholds it is judged by. Values stay as computed (shares are fractions,
-- 0.793); display_format says how to show them (0.0% shows 79.3%). KPIs come from
-- seeds/kpi_definitions.csv, KRIs from seeds/kri_definitions.csv (the rows marts.kri_catalog holds).
with kpis as (
    select * from {{ ref('kpi_definitions') }}
)

select
    'kpi' as indicator_type,
    kpi_id as indicator_id,
    'any' as level,
    kpi_id,
    label,
    unit,
    unit = 'share' as is_fraction,
    display_format,
    direction,
    definition,
    null::varchar as denominator_label,
    null::varchar as method,
    null::double as amber_threshold,
    null::double as red_threshold,
    null::varchar as threshold_scale,
    null::double as min_denominator,
    null::double as weight,
    version,
    case
        when kpi_id like 'randomized_group_%' then 'enrollment_representativeness (share, gap_pp)'
        else 'kpi_weekly_history, smo_scorecard (kpi_id)'
    end as published_in
from kpis

union all

select
    'kri' as indicator_type,
    k.kri_id as indicator_id,
    k.level,
    k.kpi_id,
    k.label,
    k.unit,
    k.unit = 'share' as is_fraction,
    p.display_format,
    k.direction,
    k.rationale as definition,
    k.denominator_label,
    k.method,
    k.amber_threshold,
    k.red_threshold,
    case when k.method = 'funnel' then 'z-score' else 'value' end as threshold_scale,
    k.min_denominator,
    k.weight,
    k.version,
    case
        when k.kpi_id = 'randomized_group_share' then 'enrollment_representativeness (kri_id, flag)'
        when k.level = 'site' then 'site_flags, site_risk_scores, flag_status (kri_id)'
        else 'smo_scorecard (kpi_id, rag)'
    end as published_in
from {{ ref('kri_definitions') }} as k
left join kpis as p on p.kpi_id = k.kpi_id
