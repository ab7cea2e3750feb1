{{ config(materialized='table') }}
-- Payment timeliness, receivables aging and holdbacks per site and as-of week, in the reporting
-- currency. Unpaid lines age from their earning event (trigger date).
with lines as (
    select
        *,
        date_diff('day', trigger_date, paid_date) as cycle_days,
        case when paid_date is null then date_diff('day', trigger_date, as_of_date) end as unpaid_age_days
    from {{ ref('int_snapshot__payments') }}
)

select
    as_of_date,
    smo_id,
    study_id,
    site_id,
    any_value(reporting_currency) as reporting_currency,
    count(*) as payment_lines,
    {{ exact_sum('amount_reporting') }} as amount_earned,
    count(paid_date) as lines_paid,
    sum(cycle_days) as payment_cycle_days_total,
    count(*) filter (where cycle_days <= {{ var('payment_terms_days') }}) as lines_paid_within_terms,
    coalesce({{ exact_sum('amount_reporting', where="paid_date is null") }}, 0) as amount_unpaid,
    coalesce({{ exact_sum('amount_reporting', where="unpaid_age_days <= 30") }}, 0) as unpaid_0_30,
    coalesce({{ exact_sum('amount_reporting', where="unpaid_age_days between 31 and 60") }}, 0) as unpaid_31_60,
    coalesce({{ exact_sum('amount_reporting', where="unpaid_age_days between 61 and 90") }}, 0) as unpaid_61_90,
    coalesce({{ exact_sum('amount_reporting', where="unpaid_age_days > 90") }}, 0) as unpaid_over_90,
    coalesce({{ exact_sum('holdback_reporting') }}, 0) as holdback_withheld,
    coalesce({{ exact_sum('amount_reporting',
        where="item_type = 'HOLDBACK_RELEASE' and paid_date is not null") }}, 0) as holdback_released
from lines
group by all
