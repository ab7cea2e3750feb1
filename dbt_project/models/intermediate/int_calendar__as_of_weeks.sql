-- One row per ISO week that has accepted deliveries; the week's as-of date is the latest
-- delivery date received in it, so KPIs never count time the data does not cover.
select
    date_trunc('week', delivery_date)::date as week_start,
    max(delivery_date) as as_of_date
from {{ ref('int_deliveries__by_study') }}
group by 1
