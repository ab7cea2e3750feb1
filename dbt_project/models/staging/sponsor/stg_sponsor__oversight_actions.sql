-- The sponsor's oversight actions as currently delivered (spec 2.5): the rows of the
-- oversight-actions delivery that ops.current_deliveries names (one file lists every study's
-- actions, so its study key is '*'), with the delivery each row came from. No rows when no
-- actions list was ever accepted.
select
    r.* exclude (_delivery_id, _source_row),
    d.smo_id as sender_id,
    r._delivery_id as delivery_id,
    r._source_row as source_row,
    d.delivery_date,
    d.file_name
from {{ source('raw', 'oversight_actions') }} as r
join {{ source('ops', 'current_deliveries') }} as c
    on c.delivery_id = r._delivery_id
    and c.feed = 'oversight_actions'
    and c.study_id = '*'
join {{ source('ops', 'deliveries') }} as d
    on d.delivery_id = r._delivery_id
    and d.status = 'ACCEPTED'
