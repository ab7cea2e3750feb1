-- Why a delivery was rejected, one row per rule and column: the delivery gate's failed rules, or
-- the warehouse check that made a loaded delivery be pulled (ingest/retraction.py). The reasons
-- shown next to a rejected file in delivery_log and the oversight report.
select
    delivery_id,
    check_name
    || coalesce(' (' || json_extract_string(details, '$.check') || ')', '') as rule,
    json_extract_string(details, '$.column') as column_name,
    try_cast(observed_value as bigint) as failing_rows,
    json_extract_string(details, '$.examples[0].row')::integer as first_row,
    json_extract_string(details, '$.examples[0].value') as first_value,
    evaluated_at
from {{ source('ops', 'gate_results') }}
where not success and delivery_id is not null
    and (
        (gate = 'delivery' and check_name <> 'contract')
        -- a delivery pulled after loading: the warehouse check its rows failed
        or (gate = 'warehouse' and check_name = 'warehouse.check_failed')
    )
