-- Each KPI rolled up per SMO and as-of week, with its RAG status from the SMO-level thresholds in
-- kri_definitions (level = 'smo'); KPIs without thresholds carry no RAG, a rated KPI without its
-- inputs is 'no_data' (never green). overall_rag is the worst RAG of the SMO that week, except
-- that an SMO missing an input it is contracted for (a feed with no accepted delivery, or a column
-- its format did not carry) is 'incomplete' unless it is red: never green on missing data.
-- unattended_signals (red site flags the sponsor did not act on in time, marts.unattended_signals)
-- is the sponsor's escalation measured per SMO: shown, never rated, so it does not move the SMO's RAG.
with smo_kpis as (
    select * from {{ ref('int_kpi__rollups') }} where level = 'smo'
),

contract_gaps as (
    select
        as_of_date,
        smo_id,
        string_agg(distinct no_data_reason, '; ' order by no_data_reason) as incomplete_reason
    from {{ ref('int_site_week__input_gaps') }}
    where is_contracted
    group by all
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
        s.no_data_reason,
        k.direction,
        k.amber_threshold,
        k.red_threshold,
        k.version as kri_version,
        case
            when k.kri_id is null then null
            when s.no_data_reason is not null then 'no_data'
            when coalesce(s.denominator, 0) < k.min_denominator or s.value is null then 'not_evaluated'
            else {{ threshold_flag('s.value', 'k.direction', 'k.amber_threshold', 'k.red_threshold') }}
        end as rag
    from smo_kpis as s
    left join {{ ref('kri_definitions') }} as k on k.kpi_id = s.kpi_id and k.level = 'smo'
),

unattended as (
    {{ unattended_kpi('smo', '(select distinct as_of_date, smo_id from smo_kpis)') }}
),

kpis as (
    select * from rated
    union all by name
    select *, case when no_data_reason is null then numerator end as value from unattended
)

select
    r.*,
    case
        when bool_or(r.rag = 'red') over smo_week then 'red'
        when g.incomplete_reason is not null then 'incomplete'
        when bool_or(r.rag = 'amber') over smo_week then 'amber'
        when bool_or(r.rag = 'green') over smo_week then 'green'
        else 'not_evaluated'
    end as overall_rag,
    g.incomplete_reason
from kpis as r
left join contract_gaps as g using (as_of_date, smo_id)
window smo_week as (partition by r.as_of_date, r.smo_id)
