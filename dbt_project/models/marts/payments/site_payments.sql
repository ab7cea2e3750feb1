-- Site payments in the reporting currency in the latest as-of week, one row per roster site. A
-- site whose SMO delivers no payments feed has null amounts and KPIs (never 0) and a
-- no_data_reason.
with kpis as (
    {{ latest_site_kpis(['payment_cycle_days', 'paid_within_terms_share', 'unpaid_over_90d_share',
            'cost_per_randomized']) }}
),

roster as (
    select as_of_date, smo_id, study_id, site_id
    from {{ ref('int_site_week__enrollment') }}
    where {{ latest_week() }}
),

payments as (
    select * from {{ ref('int_site_week__payments') }} where {{ latest_week() }}
),

feed as (
    select as_of_date, smo_id, study_id, is_delivered
    from {{ ref('int_smo_week__feed_coverage') }}
    where feed = 'payments'
)

select
    r.as_of_date,
    r.smo_id,
    r.study_id,
    r.site_id,
    case when f.is_delivered then coalesce(p.reporting_currency, '{{ var("reporting_currency") }}') end
        as reporting_currency,
    case when f.is_delivered then coalesce(p.payment_lines, 0)::integer end as payment_lines,
    case when f.is_delivered then coalesce(p.lines_paid, 0)::integer end as lines_paid,
    case when f.is_delivered then coalesce(p.amount_earned, 0) end as amount_earned,
    k.payment_cycle_days,
    k.paid_within_terms_share,
    case when f.is_delivered then coalesce(p.amount_unpaid, 0) end as amount_unpaid,
    case when f.is_delivered then coalesce(p.unpaid_0_30, 0) end as unpaid_0_30,
    case when f.is_delivered then coalesce(p.unpaid_31_60, 0) end as unpaid_31_60,
    case when f.is_delivered then coalesce(p.unpaid_61_90, 0) end as unpaid_61_90,
    case when f.is_delivered then coalesce(p.unpaid_over_90, 0) end as unpaid_over_90,
    k.unpaid_over_90d_share,
    case when f.is_delivered then coalesce(p.holdback_withheld - p.holdback_released, 0) end
        as holdback_balance,
    k.cost_per_randomized,
    k.no_data_reason
from roster as r
join kpis as k using (as_of_date, smo_id, study_id, site_id)
left join feed as f using (as_of_date, smo_id, study_id)
left join payments as p using (as_of_date, smo_id, study_id, site_id)
