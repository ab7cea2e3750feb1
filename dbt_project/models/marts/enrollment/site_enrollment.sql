-- Start-up and enrollment per site in the latest as-of week.
with site as (
    select * from {{ ref('int_site_week__enrollment') }} where {{ latest_week() }}
),

kpis as (
    {{ latest_site_kpis(['activation_cycle_days', 'irb_approval_days', 'contract_execution_days',
            'time_to_first_patient_days', 'enrollment_rate', 'percent_of_target',
            'screen_failure_rate', 'discontinuation_rate']) }}
)

select
    s.as_of_date,
    s.smo_id,
    s.study_id,
    s.site_id,
    s.site_name,
    s.country,
    s.status,
    s.selected_date,
    s.planned_activation_date,
    s.activation_date,
    s.closed_date,
    s.is_activated,
    s.is_activated_on_time,
    k.activation_cycle_days,
    k.irb_approval_days,
    k.contract_execution_days,
    s.first_randomized_date,
    k.time_to_first_patient_days,
    s.site_months_active,
    s.subjects_screened,
    s.subjects_screen_failed,
    s.subjects_randomized,
    s.subjects_discontinued,
    s.subjects_completed,
    s.target_enrollment,
    k.enrollment_rate,
    k.percent_of_target,
    k.screen_failure_rate,
    k.discontinuation_rate,
    s.is_non_enrolling,
    s.sites_delivery_id,
    k.no_data_reason
from site as s
join kpis as k using (as_of_date, smo_id, study_id, site_id)
