{{ config(meta={'dagster': {'ref': {'name': 'site_payments'}}}) }}
-- Every current payment line is counted once in the payment mart.
with marts as (
    select smo_id, study_id, sum(payment_lines) as lines from {{ ref('site_payments') }} group by all
),

staging as (
    select smo_id, study_id, count(*) as lines from {{ ref('stg_smo__payments') }} group by all
)

select *
from staging as s
left join marts as m using (smo_id, study_id)
where m.lines is distinct from s.lines
