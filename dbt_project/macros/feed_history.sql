{#- Every accepted row of every delivery of one SMO feed (rejected files never reach raw), with
    the delivery it came from. The basis for as-of-week snapshots and retroactive-change
    detection. -#}
{% macro feed_history(feed) %}
select
    r.* exclude (_delivery_id, _source_row),
    r._delivery_id as delivery_id,
    r._source_row as source_row,
    d.delivery_date
from {{ source('raw', feed) }} as r
join {{ source('ops', 'deliveries') }} as d
    on d.delivery_id = r._delivery_id
    and d.status in ('ACCEPTED', 'SUPERSEDED')
{% endmacro %}
