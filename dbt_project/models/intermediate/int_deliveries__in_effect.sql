-- For every as-of week and every SMO, feed and study: the delivery whose snapshot was in effect,
-- i.e. the newest accepted delivery dated on or before the as-of date (ties: the later load),
-- the same rule ingest uses for ops.current_deliveries.
select
    w.as_of_date,
    d.* exclude (previous_delivery_id, previous_delivery_date)
from {{ ref('int_calendar__as_of_weeks') }} as w
join {{ ref('int_deliveries__by_study') }} as d on d.delivery_date <= w.as_of_date
qualify row_number() over (
    partition by w.as_of_date, d.smo_id, d.feed, d.study_id
    order by d.delivery_date desc, d.delivery_id desc
) = 1
