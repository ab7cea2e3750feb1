-- Site payments in the reporting currency in the latest as-of week (SMOs that deliver no
-- payments feed have no rows).
with kpis as (
    {{ latest_site_kpis(['payment_cycle_days', 'paid_within_terms_share', 'unpaid_over_90d_share',
            'cost_per_randomized']) }}
)

select
    p.as_of_date,
    p.smo_id,
    p.study_id,
    p.site_id,
    p.reporting_currency,
    p.payment_lines::integer as payment_lines,
    p.lines_paid::integer as lines_paid,
    p.amount_earned,
    k.payment_cycle_days,
    k.paid_within_terms_share,
    p.amount_unpaid,
    p.unpaid_0_30,
    p.unpaid_31_60,
    p.unpaid_61_90,
    p.unpaid_over_90,
    k.unpaid_over_90d_share,
    p.holdback_withheld - p.holdback_released as holdback_balance,
    k.cost_per_randomized
from {{ ref('int_site_week__payments') }} as p
join kpis as k using (as_of_date, smo_id, study_id, site_id)
where {{ latest_week('p.as_of_date') }}
