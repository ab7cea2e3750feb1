{#- Unattended signals as a KPI (spec 4: escalation is itself measured), per as-of week and SMO
    (its red site flags) or study (red site flags and QTL exceedances): numerator = open signals
    left unattended, denominator = open signals, value = the count (numerator). NULL with a
    no_data_reason when there is nothing to attend ("no open red flags") or no actions list was in
    effect; 0 when every open signal was acted on or is still within its window. `units` is a
    relation with (as_of_date, <level>_id) to report on. -#}
{% macro unattended_kpi(level, units) %}
{%- set key = level ~ '_id' -%}
select
    u.as_of_date,
    u.{{ key }},
    'unattended_signals' as kpi_id,
    count(s.signal_id) filter (where s.state = 'unattended')::double as numerator,
    count(s.signal_id)::double as denominator,
    case
        when count(s.signal_id) = 0
            then {% if level == 'smo' %}'no open red flags'{% else %}'no open red flags or QTL exceedances'{% endif %}
        when not bool_or(s.actions_list_in_effect) then 'no oversight actions list delivered'
    end as no_data_reason
from {{ units }} as u
left join {{ ref('unattended_signals') }} as s
    on s.as_of_date = u.as_of_date
    and s.{{ key }} = u.{{ key }}
    and s.is_open
    {% if level == 'smo' %}and s.signal_type = 'SITE_FLAG'{% endif %}
group by all
{% endmacro %}
