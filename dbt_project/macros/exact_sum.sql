{#- Sum of a double expression that does not depend on row order. DuckDB adds doubles in
    whatever order its threads meet the rows, so a plain sum(double) can differ in the last bit
    between two builds of the same data (and a flag or a forecast can then tip). Each value is
    taken at 18 decimal places (20 integer digits; below a double's resolution for values >= 0.01)
    and the sum is exact decimal arithmetic: the same inputs give the same double, always.
    `where` is the aggregate's filter, `over` its window. -#}
{% macro exact_sum(expression, where=none, over=none) -%}
(sum(({{ expression }})::decimal(38, 18))
    {%- if where %} filter (where {{ where }}){% endif %}
    {%- if over %} over ({{ over }}){% endif %})::double
{%- endmacro %}
