{{ config(materialized='table') }}
-- One row per site, as-of week and KPI whose input was not delivered (seed kpi_required_inputs):
-- the feed is not in effect for the SMO, or no accepted delivery of it up to the as-of date
-- carried the column. The first missing input gives the reason (a missing feed before a missing
-- column); is_contracted says whether the SMO owed that feed for the site's study.
with site_weeks as (
    select as_of_date, smo_id, study_id, site_id from {{ ref('int_snapshot__sites') }}
),

columns_carried as (
    select w.as_of_date, c.smo_id, c.feed, c.column_name
    from {{ ref('int_calendar__as_of_weeks') }} as w
    join {{ ref('int_deliveries__columns') }} as c
        on c.delivery_date <= w.as_of_date and c.non_null_rows > 0
    group by all
),

missing as (
    select
        s.as_of_date,
        s.smo_id,
        s.study_id,
        s.site_id,
        r.kpi_id,
        r.feed,
        r.column_name,
        coalesce(f.no_data_reason, r.missing_reason) as no_data_reason,
        f.is_contracted,
        f.is_delivered
    from site_weeks as s
    cross join {{ ref('kpi_required_inputs') }} as r
    join {{ ref('int_smo_week__feed_coverage') }} as f
        on f.as_of_date = s.as_of_date and f.smo_id = s.smo_id and f.study_id = s.study_id
        and f.feed = r.feed
    left join columns_carried as c
        on c.as_of_date = s.as_of_date and c.smo_id = s.smo_id and c.feed = r.feed
        and c.column_name = r.column_name
    where not f.is_delivered or (r.column_name is not null and c.column_name is null)
)

select
    as_of_date,
    smo_id,
    study_id,
    site_id,
    kpi_id,
    feed,
    column_name,
    no_data_reason,
    is_contracted
from missing
qualify row_number() over (
    partition by as_of_date, smo_id, study_id, site_id, kpi_id
    order by is_delivered, feed, column_name nulls first
) = 1
