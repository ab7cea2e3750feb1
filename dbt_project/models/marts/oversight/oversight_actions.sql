-- The sponsor's oversight actions (spec 2.5) as currently delivered, one row per action, in the
-- latest as-of week: open or not, overdue by how many days, and what its target looks like this
-- week (a site flag's flag and lifecycle status compared within the study, a QTL's status, an
-- SMO's overall rating, a delivery's ledger status), so a lead sees whether acting worked.
with latest as (
    select max(as_of_date) as as_of_date from {{ ref('int_calendar__as_of_weeks') }}
),

actions as (
    select * from {{ ref('stg_sponsor__oversight_actions') }}
),

site_flags_now as (
    select f.smo_id, f.study_id, f.site_id, f.kri_id, f.flag, s.status as flag_status
    from {{ ref('site_flags') }} as f
    join latest as l on f.as_of_date = l.as_of_date
    left join {{ ref('flag_status') }} as s
        on s.as_of_date = f.as_of_date
        and s.comparison_group = f.comparison_group
        and s.study_id = f.study_id
        and s.site_id = f.site_id
        and s.kri_id = f.kri_id
    where f.comparison_group = 'study'
),

roster as (
    -- the SMO running each study site (the current roster)
    select study_id, site_id, min(smo_id) as smo_id from {{ ref('stg_smo__sites') }} group by all
),

qtls_now as (
    select q.study_id, q.qtl_id, q.qtl_status
    from {{ ref('study_qtls') }} as q
    join latest as l on q.as_of_date = l.as_of_date
),

smos_now as (
    select distinct s.smo_id, s.overall_rag
    from {{ ref('smo_scorecard') }} as s
    join latest as l on s.as_of_date = l.as_of_date
)

select
    l.as_of_date,
    a.action_id,
    a.study_id,
    a.target_type,
    case a.target_type
        when 'SITE_FLAG' then coalesce(a.target_smo_id, r.smo_id)
        when 'SMO' then a.target_smo_id
        when 'DELIVERY' then d.smo_id
    end as smo_id,
    a.site_id,
    a.kri_id,
    a.qtl_id,
    a.target_delivery_id,
    case a.target_type
        when 'SITE_FLAG' then 'site ' || a.site_id || ' / KRI ' || a.kri_id
        when 'QTL' then 'QTL ' || a.qtl_id
        when 'SMO' then 'SMO ' || a.target_smo_id
        when 'DELIVERY' then 'delivery ' || a.target_delivery_id || coalesce(' (' || d.file_name || ')', '')
    end as target_label,
    case a.target_type
        when 'SITE_FLAG' then concat_ws(' ', f.flag, f.flag_status)
        when 'QTL' then q.qtl_status
        when 'SMO' then m.overall_rag
        when 'DELIVERY' then d.status
    end as target_state,
    a.opened_date,
    a.owner,
    a.action_text,
    a.due_date,
    a.status,
    a.closed_date,
    a.outcome,
    a.status in ('OPEN', 'IN_PROGRESS') as is_open,
    a.status in ('OPEN', 'IN_PROGRESS') and a.due_date < l.as_of_date as is_overdue,
    case when a.status in ('OPEN', 'IN_PROGRESS') then greatest(l.as_of_date - a.due_date, 0) end
        as days_overdue,
    a.delivery_id,
    a.delivery_date,
    a.file_name
from actions as a
cross join latest as l
left join roster as r on r.study_id = a.study_id and r.site_id = a.site_id
left join site_flags_now as f
    on a.target_type = 'SITE_FLAG' and f.study_id = a.study_id and f.site_id = a.site_id and f.kri_id = a.kri_id
left join qtls_now as q on a.target_type = 'QTL' and q.study_id = a.study_id and q.qtl_id = a.qtl_id
left join smos_now as m on a.target_type = 'SMO' and m.smo_id = a.target_smo_id
left join {{ ref('stg_smo__deliveries') }} as d
    on a.target_type = 'DELIVERY' and d.delivery_id = a.target_delivery_id
