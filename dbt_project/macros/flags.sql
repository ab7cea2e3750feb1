{#- RAG of a value against amber/red thresholds in a direction (high: above is bad, low: below is
    bad, both: the absolute value above is bad). Comparisons are strict, as in "amber > 10%". -#}
{% macro threshold_flag(value, direction, amber, red) -%}
case
    when {{ value }} is null then null
    when {{ direction }} = 'high' and {{ value }} > {{ red }} then 'red'
    when {{ direction }} = 'high' and {{ value }} > {{ amber }} then 'amber'
    when {{ direction }} = 'low' and {{ value }} < {{ red }} then 'red'
    when {{ direction }} = 'low' and {{ value }} < {{ amber }} then 'amber'
    when {{ direction }} = 'both' and abs({{ value }}) > {{ red }} then 'red'
    when {{ direction }} = 'both' and abs({{ value }}) > {{ amber }} then 'amber'
    else 'green'
end
{%- endmacro %}

{#- For a funnel KRI the thresholds apply to the z-score, whose sign says the direction: a 'low'
    KRI is bad when z is below -amber, so the z-score is compared as is with negated thresholds. -#}
{% macro funnel_flag(z, direction, amber, red) -%}
case
    when {{ direction }} = 'low' then {{ threshold_flag(z, "'low'", '-' ~ amber, '-' ~ red) }}
    else {{ threshold_flag(z, direction, amber, red) }}
end
{%- endmacro %}

{#- Points a flag scores toward the risk score: red counts the KRI's full weight, amber half. -#}
{% macro flag_points(flag, weight) -%}
case {{ flag }} when 'red' then {{ weight }} when 'amber' then {{ weight }} * 0.5 else 0 end
{%- endmacro %}
