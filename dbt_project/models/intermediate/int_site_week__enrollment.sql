{{ config(materialized='table') }}
-- Start-up and enrollment counts per site and as-of week. Exposure (site-months) runs from
-- activation to the earlier of the as-of date and closure (ClinPlus counts site-months from SIV).
with subjects as (
    select
        as_of_date,
        smo_id,
        study_id,
        site_id,
        count(*) as subjects_screened,
        count(*) filter (where is_screen_failed) as subjects_screen_failed,
        count(*) filter (where is_randomized) as subjects_randomized,
        count(*) filter (where is_discontinued) as subjects_discontinued,
        count(*) filter (where is_completed) as subjects_completed,
        min(randomized_date) as first_randomized_date,
        sum(days_on_study) as subject_days
    from {{ ref('int_snapshot__subject_status') }}
    group by all
)

select
    s.as_of_date,
    s.smo_id,
    s.study_id,
    s.site_id,
    s.site_name,
    s.country,
    s.city,
    s.status,
    s.nct_id,
    s.selected_date,
    s.irb_approval_date,
    s.contract_executed_date,
    s.planned_activation_date,
    s.activation_date,
    s.closed_date,
    s.target_enrollment,
    s.delivery_id as sites_delivery_id,
    s.activation_date is not null as is_activated,
    s.planned_activation_date is not null and s.planned_activation_date <= s.as_of_date
        as is_planned_by_as_of,
    s.activation_date is not null and s.planned_activation_date is not null
        and s.activation_date <= s.planned_activation_date
        and s.planned_activation_date <= s.as_of_date as is_activated_on_time,
    date_diff('day', s.selected_date, s.activation_date) as activation_cycle_days,
    date_diff('day', s.selected_date, s.irb_approval_date) as irb_approval_days,
    date_diff('day', s.selected_date, s.contract_executed_date) as contract_execution_days,
    date_diff('day', s.activation_date, sub.first_randomized_date) as time_to_first_patient_days,
    case when s.activation_date is null then 0 else greatest(0, date_diff(
        'day', s.activation_date, least(s.as_of_date, coalesce(s.closed_date, s.as_of_date))
    )) / 30.4375 end as site_months_active,
    coalesce(sub.subjects_screened, 0) as subjects_screened,
    coalesce(sub.subjects_screen_failed, 0) as subjects_screen_failed,
    coalesce(sub.subjects_randomized, 0) as subjects_randomized,
    coalesce(sub.subjects_discontinued, 0) as subjects_discontinued,
    coalesce(sub.subjects_completed, 0) as subjects_completed,
    coalesce(sub.subject_days, 0) as subject_days,
    sub.first_randomized_date,
    s.activation_date is not null
        and date_diff('day', s.activation_date, s.as_of_date) >= {{ var('non_enrolling_after_days') }}
        as is_eligible_for_non_enrolling,
    s.activation_date is not null
        and date_diff('day', s.activation_date, s.as_of_date) >= {{ var('non_enrolling_after_days') }}
        and coalesce(sub.subjects_randomized, 0) = 0 as is_non_enrolling
from {{ ref('int_snapshot__sites') }} as s
left join subjects as sub
    on sub.as_of_date = s.as_of_date
    and sub.smo_id = s.smo_id
    and sub.study_id = s.study_id
    and sub.site_id = s.site_id
