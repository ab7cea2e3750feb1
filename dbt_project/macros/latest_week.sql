{#- Filter for the latest as-of week: the current marts show the newest week, the history marts
    all weeks. -#}
{% macro latest_week(column='as_of_date') -%}
{{ column }} = (select max(as_of_date) from {{ ref('int_calendar__as_of_weeks') }})
{%- endmacro %}
