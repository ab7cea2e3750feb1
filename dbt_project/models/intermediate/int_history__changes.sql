{{ config(materialized='table') }}
-- History an SMO rewrote between consecutive deliveries, feed by feed (see history_changes).
with sites as (
    {{ history_changes('sites', ['site_id'],
        ['selected_date', 'irb_approval_date', 'contract_executed_date', 'activation_date',
         'closed_date']) }}
),
subjects as (
    {{ history_changes('subjects', ['site_id', 'subject_id'],
        ['screened_date', 'consent_date', 'screen_failed_date', 'screen_fail_reason',
         'randomized_date', 'discontinued_date', 'discontinuation_reason', 'completed_date']) }}
),
visits as (
    {{ history_changes('visits', ['subject_id', 'visit_id'], ['actual_date', 'crf_entry_date'],
        site_column=none, deletable='{row}.actual_date is not null') }}
),
deviations as (
    {{ history_changes('deviations', ['deviation_id'],
        ['site_id', 'subject_id', 'category', 'severity', 'occurred_date', 'identified_date',
         'reported_date', 'closed_date']) }}
),
payments as (
    {{ history_changes('payments', ['payment_line_id'],
        ['item_type', 'amount', 'currency', 'trigger_date', 'invoice_date', 'paid_date',
         'holdback_amount']) }}
),
staffing as (
    {{ history_changes('staffing', ['site_id', 'crc_id', 'start_date'], ['role', 'end_date', 'fte'],
        per_study=false) }}
),
visit_sites as (
    select distinct smo_id, study_id, subject_id, site_id from {{ ref('stg_smo__subjects_history') }}
)

select * from sites
union all select * from subjects
union all
select
    v.smo_id, v.study_id, s.site_id, v.feed, v.record_key, v.change_kind, v.field, v.old_value,
    v.new_value, v.previous_delivery_id, v.previous_delivery_date, v.delivery_id, v.delivery_date
from visits as v
left join visit_sites as s
    on s.smo_id = v.smo_id and s.study_id = v.study_id
    and s.subject_id = split_part(v.record_key, '|', 1)
union all select * from deviations
union all select * from payments
union all select * from staffing
