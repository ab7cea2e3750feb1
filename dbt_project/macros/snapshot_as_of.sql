{#- The rows of one feed as they stood at each as-of week: the rows of the delivery in effect
    for that SMO, feed and study on the week's as-of date (see int_deliveries__in_effect). -#}
{% macro snapshot_as_of(feed, per_study=true) %}
select
    e.as_of_date,
    h.*
from {{ ref('stg_smo__' ~ feed ~ '_history') }} as h
join {{ ref('int_deliveries__in_effect') }} as e
    on e.delivery_id = h.delivery_id
    and e.feed = '{{ feed }}'
    and e.study_id = {% if per_study %}h.study_id{% else %}'*'{% endif %}
{% endmacro %}
