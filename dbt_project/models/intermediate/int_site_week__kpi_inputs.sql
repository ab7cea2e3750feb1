{{ config(materialized='table') }}
-- Every KPI of every site and as-of week as (numerator, denominator, multiplier): the one place
-- KPI formulas live. value = numerator / denominator * multiplier, and any roll-up is
-- sum(numerator) / sum(denominator) * multiplier, so study, SMO and country figures are
-- ratios of sums, never means of site ratios. A KPI whose input was not delivered
-- (int_site_week__input_gaps) has no numerator, denominator or value but a no_data_reason, so it
-- is never a 0 or a share of 1.0 and adds nothing to any roll-up.
with sites as (
    select * from {{ ref('int_site_week__enrollment') }}
),

site_week as (
    select
        s.*,
        coalesce(d.deviations, 0) as deviations,
        coalesce(d.important_deviations, 0) as important_deviations,
        coalesce(d.important_eligibility_deviations, 0) as important_eligibility_deviations,
        coalesce(d.deviations_identified, 0) as deviations_identified,
        d.identification_days_total,
        coalesce(d.deviations_reported, 0) as deviations_reported,
        d.reporting_days_total,
        coalesce(d.open_deviations, 0) as open_deviations,
        d.open_deviation_age_days_total,
        coalesce(v.visits_completed, 0) as visits_completed,
        coalesce(v.visits_entered, 0) as visits_entered,
        v.entry_lag_days_total,
        coalesce(v.visits_due_for_entry, 0) as visits_due_for_entry,
        coalesce(v.visits_entered_late, 0) as visits_entered_late,
        p.payment_lines,
        p.amount_earned,
        coalesce(p.lines_paid, 0) as lines_paid,
        p.payment_cycle_days_total,
        coalesce(p.lines_paid_within_terms, 0) as lines_paid_within_terms,
        coalesce(p.amount_unpaid, 0) as amount_unpaid,
        coalesce(p.unpaid_over_90, 0) as unpaid_over_90,
        st.crc_leavers_12m,
        st.crc_headcount_years_12m,
        st.active_backup_crcs,
        st.active_crc_fte,
        coalesce(h.retroactive_changes_12w, 0) as retroactive_changes_12w
    from sites as s
    left join {{ ref('int_site_week__deviations') }} as d using (as_of_date, smo_id, study_id, site_id)
    left join {{ ref('int_site_week__visits') }} as v using (as_of_date, smo_id, study_id, site_id)
    left join {{ ref('int_site_week__payments') }} as p using (as_of_date, smo_id, study_id, site_id)
    left join {{ ref('int_site_week__staffing') }} as st using (as_of_date, smo_id, site_id)
    left join (
        select w.as_of_date, c.smo_id, c.study_id, c.site_id, count(*) as retroactive_changes_12w
        from {{ ref('int_calendar__as_of_weeks') }} as w
        join {{ ref('int_history__changes') }} as c
            on c.delivery_date <= w.as_of_date and c.delivery_date > w.as_of_date - interval 84 day
        group by all
    ) as h using (as_of_date, smo_id, study_id, site_id)
),

kpis as (
    select
        as_of_date, smo_id, study_id, site_id, country,
        unnest([
            -- start-up
            {'kpi_id': 'sites_activated_share', 'numerator': is_activated::int, 'denominator': 1, 'multiplier': 1},
            {'kpi_id': 'on_time_activation', 'numerator': is_activated_on_time::int, 'denominator': is_planned_by_as_of::int, 'multiplier': 1},
            {'kpi_id': 'activation_cycle_days', 'numerator': activation_cycle_days, 'denominator': (activation_cycle_days is not null)::int, 'multiplier': 1},
            {'kpi_id': 'irb_approval_days', 'numerator': irb_approval_days, 'denominator': (irb_approval_days is not null)::int, 'multiplier': 1},
            {'kpi_id': 'contract_execution_days', 'numerator': contract_execution_days, 'denominator': (contract_execution_days is not null)::int, 'multiplier': 1},
            -- enrollment
            {'kpi_id': 'time_to_first_patient_days', 'numerator': time_to_first_patient_days, 'denominator': (time_to_first_patient_days is not null)::int, 'multiplier': 1},
            {'kpi_id': 'enrollment_rate', 'numerator': subjects_randomized, 'denominator': site_months_active, 'multiplier': 1},
            {'kpi_id': 'percent_of_target', 'numerator': subjects_randomized, 'denominator': target_enrollment, 'multiplier': 1},
            {'kpi_id': 'screen_failure_rate', 'numerator': subjects_screen_failed, 'denominator': subjects_screened, 'multiplier': 1},
            {'kpi_id': 'discontinuation_rate', 'numerator': subjects_discontinued, 'denominator': subjects_randomized, 'multiplier': 1},
            {'kpi_id': 'non_enrolling_site', 'numerator': is_non_enrolling::int, 'denominator': is_eligible_for_non_enrolling::int, 'multiplier': 1},
            -- deviations
            {'kpi_id': 'deviations_per_visit', 'numerator': deviations, 'denominator': visits_completed, 'multiplier': 1},
            {'kpi_id': 'important_deviation_rate', 'numerator': important_deviations, 'denominator': subject_days, 'multiplier': 1000},
            {'kpi_id': 'important_deviation_share', 'numerator': important_deviations, 'denominator': deviations, 'multiplier': 1},
            {'kpi_id': 'important_eligibility_deviations_per_randomized', 'numerator': important_eligibility_deviations, 'denominator': subjects_randomized, 'multiplier': 1},
            {'kpi_id': 'deviation_identification_days', 'numerator': identification_days_total, 'denominator': deviations_identified, 'multiplier': 1},
            {'kpi_id': 'deviation_reporting_days', 'numerator': reporting_days_total, 'denominator': deviations_reported, 'multiplier': 1},
            {'kpi_id': 'open_deviation_age_days', 'numerator': open_deviation_age_days_total, 'denominator': open_deviations, 'multiplier': 1},
            -- data timeliness
            {'kpi_id': 'entry_lag_mean_days', 'numerator': entry_lag_days_total, 'denominator': visits_entered, 'multiplier': 1},
            {'kpi_id': 'entry_lag_over_10d_share', 'numerator': visits_entered_late, 'denominator': visits_due_for_entry, 'multiplier': 1},
            -- payments (reporting currency)
            {'kpi_id': 'payment_cycle_days', 'numerator': payment_cycle_days_total, 'denominator': lines_paid, 'multiplier': 1},
            {'kpi_id': 'paid_within_terms_share', 'numerator': lines_paid_within_terms, 'denominator': lines_paid, 'multiplier': 1},
            {'kpi_id': 'unpaid_over_90d_share', 'numerator': unpaid_over_90, 'denominator': amount_unpaid, 'multiplier': 1},
            {'kpi_id': 'cost_per_randomized', 'numerator': amount_earned, 'denominator': subjects_randomized, 'multiplier': 1},
            -- staffing
            {'kpi_id': 'crc_turnover', 'numerator': crc_leavers_12m, 'denominator': crc_headcount_years_12m, 'multiplier': 1},
            {'kpi_id': 'sites_without_backup_crc', 'numerator': (active_backup_crcs = 0)::int, 'denominator': (is_activated and closed_date is null and active_backup_crcs is not null)::int, 'multiplier': 1},
            {'kpi_id': 'randomized_per_crc_fte', 'numerator': subjects_randomized, 'denominator': active_crc_fte, 'multiplier': 1},
            -- audit trail
            {'kpi_id': 'retroactive_changes', 'numerator': retroactive_changes_12w, 'denominator': 1, 'multiplier': 1}
        ]) as k
    from site_week
),

computed as (
    select
        as_of_date,
        smo_id,
        study_id,
        site_id,
        country,
        k.kpi_id,
        k.numerator::double as numerator,
        k.denominator::double as denominator,
        k.multiplier::double as multiplier,
        {{ safe_ratio('k.numerator', 'k.denominator', 'k.multiplier') }} as value
    from kpis
)

select
    c.as_of_date,
    c.smo_id,
    c.study_id,
    c.site_id,
    c.country,
    c.kpi_id,
    case when g.no_data_reason is null then c.numerator end as numerator,
    case when g.no_data_reason is null then c.denominator end as denominator,
    c.multiplier,
    case when g.no_data_reason is null then c.value end as value,
    g.no_data_reason
from computed as c
left join {{ ref('int_site_week__input_gaps') }} as g
    using (as_of_date, smo_id, study_id, site_id, kpi_id)
