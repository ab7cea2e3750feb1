-- Start-up and enrollment per study in the latest as-of week, with on-time activation evaluated
-- at the dates by which 25%, 50% and 75% of the study's sites were planned to be active.
with sites as (
    select * from {{ ref('int_site_week__enrollment') }} where {{ latest_week() }}
),

plan as (
    select
        study_id,
        quantile_disc(planned_activation_date, 0.25) as plan_25_date,
        quantile_disc(planned_activation_date, 0.50) as plan_50_date,
        quantile_disc(planned_activation_date, 0.75) as plan_75_date
    from sites
    group by study_id
),

on_time as (
    select
        s.study_id,
        {% for pct in [25, 50, 75] %}
        {{ safe_ratio(
            'count(*) filter (where s.planned_activation_date <= p.plan_' ~ pct ~ '_date and s.activation_date <= p.plan_' ~ pct ~ '_date)',
            'count(*) filter (where s.planned_activation_date <= p.plan_' ~ pct ~ '_date and p.plan_' ~ pct ~ '_date <= s.as_of_date)') }}
            as on_time_activation_at_{{ pct }}pct_plan{% if not loop.last %},{% endif %}
        {% endfor %}
    from sites as s
    join plan as p using (study_id)
    group by s.study_id
),

counts as (
    select
        as_of_date,
        study_id,
        count(*)::integer as sites_in_roster,
        count(*) filter (where is_activated)::integer as sites_activated,
        count(*) filter (where status = 'DROPPED')::integer as sites_dropped,
        count(*) filter (where is_non_enrolling)::integer as sites_non_enrolling,
        sum(subjects_screened)::integer as subjects_screened,
        sum(subjects_randomized)::integer as subjects_randomized,
        sum(target_enrollment)::integer as target_enrollment,
        {{ exact_sum('site_months_active') }} as site_months_active
    from sites
    group by all
),

kpis as (
    select
        study_id,
        {{ pivot_kpis(['sites_activated_share', 'on_time_activation', 'activation_cycle_days',
            'time_to_first_patient_days', 'enrollment_rate', 'percent_of_target',
            'screen_failure_rate', 'discontinuation_rate']) }}
    from {{ ref('int_kpi__rollups') }}
    where level = 'study' and {{ latest_week() }}
    group by all
)

select
    c.as_of_date,
    c.study_id,
    c.sites_in_roster,
    c.sites_activated,
    c.sites_dropped,
    k.sites_activated_share,
    k.on_time_activation,
    o.on_time_activation_at_25pct_plan,
    o.on_time_activation_at_50pct_plan,
    o.on_time_activation_at_75pct_plan,
    k.activation_cycle_days,
    k.time_to_first_patient_days,
    c.site_months_active,
    c.subjects_screened,
    c.subjects_randomized,
    c.target_enrollment,
    k.enrollment_rate,
    k.percent_of_target,
    k.screen_failure_rate,
    k.discontinuation_rate,
    c.sites_non_enrolling
from counts as c
join kpis as k using (study_id)
join on_time as o using (study_id)
