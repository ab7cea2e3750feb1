{#- Fails for rows where a share is outside [0, 1] (nulls pass). -#}
{% test share_between_0_and_1(model, column_name) %}
select * from {{ model }} where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}
