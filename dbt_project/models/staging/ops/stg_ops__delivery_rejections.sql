-- The delivery gate's failed rules, one row per rule and column of a rejected delivery: the
-- reasons shown next to a rejected file in delivery_log and the oversight report.
select
    delivery_id,
    check_name as rule,
    json_extract_string(details, '$.column') as column_name,
    try_cast(observed_value as bigint) as failing_rows,
    json_extract_string(details, '$.examples[0].row')::integer as first_row,
    json_extract_string(details, '$.examples[0].value') as first_value,
    evaluated_at
from {{ source('ops', 'gate_results') }}
where gate = 'delivery' and not success and check_name <> 'contract' and delivery_id is not null
