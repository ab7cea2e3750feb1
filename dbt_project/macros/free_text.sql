{#- Whether a column name (an expression) is one of the free-text subject columns (var
    free_text_columns): their values stay in the warehouse and are never published. -#}
{% macro is_free_text(column) -%}
coalesce({{ column }} in ({% for c in var('free_text_columns') %}'{{ c }}'{% if not loop.last %}, {% endif %}{% endfor %}), false)
{%- endmacro %}
