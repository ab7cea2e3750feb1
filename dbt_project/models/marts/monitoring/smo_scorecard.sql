-- Each KPI rolled up per SMO and as-of week, with its RAG status from the SMO-level thresholds in
-- kri_definitions (level = 'smo'); KPIs without thresholds carry no RAG. overall_rag is the worst
-- RAG of the SMO that week.
with smo_kpis as (
    select * from {{ ref('int_kpi__rollups') }} where level = 'smo'
),

rated as (
    select
        s.as_of_date,
        s.smo_id,
        s.kpi_id,
        s.numerator,
        s.denominator,
        s.value,
        s.sites_contributing,
        k.direction,
        k.amber_threshold,
        k.red_threshold,
        k.version as kri_version,
        case
            when k.kri_id is null then null
            when coalesce(s.denominator, 0) < k.min_denominator or s.value is null then 'not_evaluated'
            else {{ threshold_flag('s.value', 'k.direction', 'k.amber_threshold', 'k.red_threshold') }}
        end as rag
    from smo_kpis as s
    left join {{ ref('kri_definitions') }} as k on k.kpi_id = s.kpi_id and k.level = 'smo'
)

select
    *,
    case max(case rag when 'red' then 3 when 'amber' then 2 when 'green' then 1 else 0 end)
            over (partition by as_of_date, smo_id)
        when 3 then 'red' when 2 then 'amber' when 1 then 'green' else 'not_evaluated'
    end as overall_rag
from rated
