{#- numerator / denominator, null when the denominator is null or zero. -#}
{% macro safe_ratio(numerator, denominator, multiplier=1) -%}
case when {{ denominator }} is null or {{ denominator }} = 0 then null
     else {{ numerator }}::double / {{ denominator }} * {{ multiplier }} end
{%- endmacro %}
