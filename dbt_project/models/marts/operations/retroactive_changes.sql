-- Rows an SMO changed or deleted in history between two consecutive deliveries. Old and new
-- values of free-text fields (screen-fail and discontinuation reasons, deviation terms) are not
-- published: only that they changed; intermediate.int_history__changes keeps the values.
select
    smo_id,
    nullif(study_id, '*') as study_id,
    site_id,
    feed,
    record_key,
    change_kind,
    field,
    case when not {{ is_free_text('field') }} then old_value end as old_value,
    case when not {{ is_free_text('field') }} then new_value end as new_value,
    {{ is_free_text('field') }} as values_withheld,
    previous_delivery_id,
    previous_delivery_date,
    delivery_id,
    delivery_date
from {{ ref('int_history__changes') }}
