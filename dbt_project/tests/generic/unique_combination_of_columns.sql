{#- A grain test without the dbt_utils package (dbt packages come from outside the package
    registries this project may use). Fails with one row per duplicated key. -#}
{% test unique_combination_of_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
