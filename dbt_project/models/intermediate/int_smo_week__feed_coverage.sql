{{ config(materialized='table') }}
-- For every as-of week, SMO and study on the SMO's roster, and every canonical feed: whether the
-- SMO is contracted to deliver it (seed smo_feed_contracts) and whether it has an accepted
-- delivery of it in effect, with the "no data" reason when it has none. A feed counts as
-- delivered for all of an SMO's studies once any delivery of it is in effect: a full snapshot
-- with no rows for a study (no deviations there yet) is not a missing feed.
with smo_studies as (
    select distinct as_of_date, smo_id, study_id from {{ ref('int_snapshot__sites') }}
),

feeds as (
    select unnest(['sites', 'subjects', 'visits', 'deviations', 'payments', 'staffing']) as feed
),

delivered as (
    select distinct as_of_date, smo_id, feed from {{ ref('int_deliveries__in_effect') }}
)

select
    s.as_of_date,
    s.smo_id,
    s.study_id,
    f.feed,
    coalesce(c.contracted, false) as is_contracted,
    d.feed is not null as is_delivered,
    case
        when d.feed is not null then null
        when coalesce(c.contracted, false) then 'no accepted ' || f.feed || ' delivery'
        else 'no ' || f.feed || ' feed'
    end as no_data_reason
from smo_studies as s
cross join feeds as f
left join delivered as d on d.as_of_date = s.as_of_date and d.smo_id = s.smo_id and d.feed = f.feed
left join {{ ref('smo_feed_contracts') }} as c
    on c.smo_id = s.smo_id and c.study_id = s.study_id and c.feed = f.feed
