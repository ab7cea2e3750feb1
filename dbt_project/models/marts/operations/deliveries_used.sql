-- Lineage: for every as-of week, SMO, feed and study, the delivery (file, hash, receipt time)
-- whose snapshot the week's KPIs were computed from. Join any mart row on as_of_date, smo_id and
-- study_id to find its sources.
select
    e.as_of_date,
    e.smo_id,
    e.feed,
    nullif(e.study_id, '*') as study_id,
    e.delivery_id,
    e.delivery_date,
    e.file_name,
    e.sha256,
    e.received_at
from {{ ref('int_deliveries__in_effect') }} as e
