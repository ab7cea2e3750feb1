{#- Filter for the latest as-of week: the current marts show the newest week, the history marts
    all weeks. -#}
{% macro latest_week(column='as_of_date') -%}
{{ column }} = (select max(as_of_date) from {{ ref('int_calendar__as_of_weeks') }})
{%- endmacro %}

{#- The latest week's value of each listed KPI per site, one column per KPI, from the KPI formula
    table; the wide site marts join this instead of recomputing any formula. no_data_reason lists
    why any of those KPIs has no data (its inputs were not delivered), null when all had them. -#}
{% macro latest_site_kpis(kpis) %}
select
    as_of_date, smo_id, study_id, site_id,
    {{ pivot_kpis(kpis) }},
    string_agg(distinct no_data_reason, '; ' order by no_data_reason)
        filter (where kpi_id in ('{{ kpis | join("', '") }}')) as no_data_reason
from {{ ref('int_site_week__kpi_inputs') }}
where {{ latest_week() }}
group by all
{% endmacro %}
