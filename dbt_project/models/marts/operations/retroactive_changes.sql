-- Rows an SMO changed or deleted in history between two consecutive deliveries.
select
    smo_id,
    nullif(study_id, '*') as study_id,
    site_id,
    feed,
    record_key,
    change_kind,
    field,
    old_value,
    new_value,
    previous_delivery_id,
    previous_delivery_date,
    delivery_id,
    delivery_date
from {{ ref('int_history__changes') }}
