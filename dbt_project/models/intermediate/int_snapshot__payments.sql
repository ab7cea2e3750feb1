{{ config(materialized='view') }}
-- A view: one model reads it (int_site_week__payments) and one test checks it, so a table only
-- wrote every week's payment lines to disk again (1.8M rows and 6 s of a `large` build).
-- Payment lines as of each week, converted to the reporting currency with the FX rate valid on
-- the line's earning date (the trigger; invoice or delivery date when the SMO gives none).
-- A zero reporting-currency rate in the seed gives NULL amounts, never infinity.
with lines as (
    {{ snapshot_as_of('payments') }}
),

rates as (
    select currency, valid_from, eur_per_unit from {{ ref('fx_rates') }}
),

dated as (
    select *, coalesce(trigger_date, invoice_date, delivery_date) as fx_date from lines
)

select
    d.* exclude (fx_date),
    '{{ var("reporting_currency") }}' as reporting_currency,
    d.amount * fx.eur_per_unit / nullif(rep.eur_per_unit, 0) as amount_reporting,
    coalesce(d.holdback_amount, 0) * fx.eur_per_unit / nullif(rep.eur_per_unit, 0)
        as holdback_reporting,
    fx.valid_from as fx_rate_date
from dated as d
asof left join rates as fx
    on fx.currency = d.currency and d.fx_date >= fx.valid_from
asof left join (
    select valid_from, eur_per_unit from rates where currency = '{{ var("reporting_currency") }}'
) as rep
    on d.fx_date >= rep.valid_from
