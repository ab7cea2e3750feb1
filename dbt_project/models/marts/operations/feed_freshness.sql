-- Per as-of week, SMO and feed: how old the newest accepted delivery is. An SMO that stops
-- delivering a feed keeps its last good data in the marts; this is where that shows. SMOs only:
-- the sponsor's own oversight-actions list is not an SMO feed.
with received as (
    select
        smo_id,
        feed,
        delivery_id,
        status,
        coalesce(delivery_date, received_at::date) as delivery_date,
        received_at
    from {{ ref('stg_smo__deliveries') }}
    where feed is not null and status in ('ACCEPTED', 'SUPERSEDED', 'REJECTED')
        and smo_id <> '{{ var("sponsor_sender_id") }}'
),

weeks as (
    select w.as_of_date, f.smo_id, f.feed
    from {{ ref('int_calendar__as_of_weeks') }} as w
    cross join (select distinct smo_id, feed from received) as f
),

per_week as (
    select
        w.as_of_date,
        w.smo_id,
        w.feed,
        max(r.delivery_date) filter (where r.status <> 'REJECTED') as last_accepted_delivery_date,
        arg_max(r.delivery_id, (r.delivery_date, r.delivery_id)) filter (where r.status <> 'REJECTED')
            as last_accepted_delivery_id,
        max(r.received_at) filter (where r.status <> 'REJECTED') as last_accepted_received_at,
        max(r.delivery_date) filter (where r.status = 'REJECTED') as last_rejected_delivery_date
    from weeks as w
    left join received as r
        on r.smo_id = w.smo_id and r.feed = w.feed and r.delivery_date <= w.as_of_date
    group by all
)

select
    p.as_of_date,
    p.smo_id,
    p.feed,
    p.last_accepted_delivery_id,
    p.last_accepted_delivery_date,
    p.last_accepted_received_at,
    (p.as_of_date - p.last_accepted_delivery_date)::integer as age_days,
    (
        select count(*) from received as r
        where r.smo_id = p.smo_id and r.feed = p.feed and r.status = 'REJECTED'
            and r.delivery_date <= p.as_of_date
            and r.received_at > coalesce(p.last_accepted_received_at, timestamp '0001-01-01')
    )::integer as rejected_since_last_accepted,
    p.last_rejected_delivery_date,
    {{ var('stale_feed_after_days') }}::integer as stale_after_days,
    coalesce(p.as_of_date - p.last_accepted_delivery_date > {{ var('stale_feed_after_days') }}::integer, true)
        as is_stale
from per_week as p
