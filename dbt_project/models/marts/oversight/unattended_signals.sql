-- Escalation (spec 4): every red flag episode and QTL exceedance per as-of week, and whether the
-- sponsor acted on it. A signal starts the first week it is red (a site flag compared within its
-- study) or exceeded (a QTL); an action is due by start + var('action_due_days'). The action that
-- counts is the first one, as the actions list stood that week, that targets the signal (SITE_FLAG
-- on the same study, site and KRI; QTL on the same study and QTL), is not CANCELLED and was opened
-- on or after the episode's first flagged week (an action taken while the flag was still amber
-- counts) and no later than the week it resolved. State: attended (such an action was opened by
-- the as-of date), awaiting (none yet, still within the window) or unattended (none, window
-- passed). Every signal that started by a week has a row in that week, resolved ones included.
{% set due_days = var('action_due_days') | int %}
with weeks as (
    select as_of_date from {{ ref('int_calendar__as_of_weeks') }}
),

flag_episodes as (
    select
        episode_id as signal_id,
        'SITE_FLAG' as signal_type,
        any_value(smo_id) as smo_id,
        any_value(study_id) as study_id,
        any_value(site_id) as site_id,
        any_value(kri_id) as kri_id,
        null::varchar as qtl_id,
        min(first_flagged_week) as first_flagged_week,
        min(as_of_date) filter (where flag = 'red' and status <> 'resolved') as started_week,
        min(as_of_date) filter (where status = 'resolved') as resolved_week
    from {{ ref('flag_status') }}
    where comparison_group = 'study'
    group by episode_id
    having min(as_of_date) filter (where flag = 'red' and status <> 'resolved') is not null
),

qtl_weeks as (
    select
        *,
        -- the week that ends an exceedance: the next evaluable week within the limit
        case when value is not null and not is_exceeded then as_of_date end as within_week
    from {{ ref('study_qtls') }}
),

qtl_exceedances as (
    select
        md5(concat_ws('|', 'QTL', e.study_id, e.qtl_id, e.exceeded_since)) as signal_id,
        'QTL' as signal_type,
        null::varchar as smo_id,
        e.study_id,
        null::varchar as site_id,
        null::varchar as kri_id,
        e.qtl_id,
        e.exceeded_since as first_flagged_week,
        e.exceeded_since as started_week,
        min(w.within_week) as resolved_week
    from (select distinct study_id, qtl_id, exceeded_since from qtl_weeks where exceeded_since is not null) as e
    left join qtl_weeks as w
        on w.study_id = e.study_id and w.qtl_id = e.qtl_id and w.within_week > e.exceeded_since
    group by all
),

signals as (
    select * from flag_episodes
    union all
    select * from qtl_exceedances
),

signal_weeks as (
    select
        w.as_of_date,
        s.*,
        s.started_week + {{ due_days }} as action_due_by,
        s.resolved_week is null or s.resolved_week > w.as_of_date as is_open
    from signals as s
    join weeks as w on w.as_of_date >= s.started_week
),

first_actions as (
    select
        s.as_of_date,
        s.signal_id,
        min(a.opened_date) as first_action_opened,
        arg_min(a.action_id, (a.opened_date, a.action_id)) as first_action_id,
        count(*)::integer as actions
    from signal_weeks as s
    join {{ ref('int_actions__in_effect') }} as a
        on a.as_of_date = s.as_of_date
        and a.target_type = s.signal_type
        and a.study_id = s.study_id
        and a.status <> 'CANCELLED'
        and a.opened_date >= s.first_flagged_week
        and (s.resolved_week is null or a.opened_date <= s.resolved_week)
        and case s.signal_type
            when 'SITE_FLAG' then a.site_id = s.site_id and a.kri_id = s.kri_id
            else a.qtl_id = s.qtl_id
        end
    group by all
),

actions_known as (
    -- weeks in which some actions list was in effect
    select distinct as_of_date from {{ ref('int_actions__in_effect') }}
)

select
    s.as_of_date,
    s.signal_id,
    s.signal_type,
    s.smo_id,
    s.study_id,
    s.site_id,
    s.kri_id,
    s.qtl_id,
    s.started_week,
    s.action_due_by,
    s.resolved_week,
    s.is_open,
    (date_diff('day', date_trunc('week', s.started_week), date_trunc('week', s.as_of_date)) // 7
        + 1)::integer as weeks_since_start,
    f.first_action_id,
    f.first_action_opened,
    coalesce(f.actions, 0) as actions,
    f.first_action_opened > s.action_due_by as is_action_late,
    case
        when f.first_action_opened is not null then 'attended'
        when s.as_of_date <= s.action_due_by then 'awaiting'
        else 'unattended'
    end as state,
    k.as_of_date is not null as actions_list_in_effect
from signal_weeks as s
left join first_actions as f using (as_of_date, signal_id)
left join actions_known as k on k.as_of_date = s.as_of_date
