{#- The rows of the current delivery per (SMO, study) of one SMO feed, with delivery lineage.
    A delivery is a full snapshot, so "current" means: rows of the delivery that
    ops.current_deliveries points at for that SMO, feed and study ('*' for feeds that are not
    per study). -#}
{% macro current_snapshot(feed, per_study=true) %}
select h.*
from {{ ref('stg_smo__' ~ feed ~ '_history') }} as h
join {{ source('ops', 'current_deliveries') }} as c
    on c.delivery_id = h.delivery_id
    and c.feed = '{{ feed }}'
    and {% if per_study %}c.study_id = h.study_id{% else %}c.study_id = '*'{% endif %}
{% endmacro %}
