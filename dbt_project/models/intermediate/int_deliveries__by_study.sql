-- Accepted deliveries (current or superseded since), one row per study a delivery covers;
-- feeds that are not per study ('staffing') use study_id '*'. Each row knows the delivery it
-- replaced for the same SMO, feed and study, which is what retroactive-change detection compares.
-- SMO feeds only: the sponsor's oversight-actions lists (int_actions__in_effect) are not an SMO's
-- delivery, so they add no as-of week and count in no SMO's coverage or lineage.
with accepted as (
    select
        delivery_id,
        smo_id,
        feed,
        unnest(case when len(studies) = 0 then ['*'] else studies end) as study_id,
        delivery_date,
        file_name,
        sha256,
        received_at
    from {{ ref('stg_smo__deliveries') }}
    where status in ('ACCEPTED', 'SUPERSEDED')
        and smo_id <> '{{ var("sponsor_sender_id") }}'
)

select
    *,
    lag(delivery_id) over w as previous_delivery_id,
    lag(delivery_date) over w as previous_delivery_date
from accepted
window w as (partition by smo_id, feed, study_id order by delivery_date, delivery_id)
