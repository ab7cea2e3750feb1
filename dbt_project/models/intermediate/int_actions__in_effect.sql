-- The sponsor's oversight actions as known in each as-of week: the rows of the newest accepted
-- actions list delivered on or before the as-of date (each list is a full snapshot, like an SMO
-- feed), so escalation for a past week rebuilds from the stored deliveries. Actions opened
-- after the as-of date are not known yet and left out.
with lists as (
    select delivery_id, delivery_date
    from {{ ref('stg_smo__deliveries') }}
    where smo_id = '{{ var("sponsor_sender_id") }}'
        and feed = 'oversight_actions'
        and status in ('ACCEPTED', 'SUPERSEDED')
),

in_effect as (
    select w.as_of_date, l.delivery_id, l.delivery_date
    from {{ ref('int_calendar__as_of_weeks') }} as w
    join lists as l on l.delivery_date <= w.as_of_date
    qualify row_number() over (
        partition by w.as_of_date order by l.delivery_date desc, l.delivery_id desc
    ) = 1
)

select
    e.as_of_date,
    r.* exclude (_delivery_id, _source_row),
    e.delivery_id,
    e.delivery_date
from in_effect as e
join {{ source('raw', 'oversight_actions') }} as r on r._delivery_id = e.delivery_id
where r.opened_date <= e.as_of_date
