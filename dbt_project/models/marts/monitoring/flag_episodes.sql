-- Flag lifecycle per episode (spec 4): one row per run of flagged (amber or red) weeks of a site x
-- KRI x comparison group, with its first and last flagged week, peak severity and where it stands
-- in the latest as-of week. Derived from flag_status, so both marts tell the same story.
with status as (
    select * from {{ ref('flag_status') }}
),

latest as (
    select max(as_of_date) as as_of_date from {{ ref('int_calendar__as_of_weeks') }}
),

episodes as (
    select
        episode_id,
        any_value(comparison_group) as comparison_group,
        any_value(smo_id) as smo_id,
        any_value(study_id) as study_id,
        any_value(site_id) as site_id,
        any_value(kri_id) as kri_id,
        min(first_flagged_week) as first_flagged_week,
        max(as_of_date) filter (where status <> 'resolved') as last_flagged_week,
        count(*) filter (where status <> 'resolved')::integer as weeks_flagged,
        max(case peak_severity when 'red' then 2 else 1 end) as peak_rank,
        arg_max(flag, as_of_date) filter (where status <> 'resolved') as last_flag,
        max(as_of_date) filter (where status = 'resolved') as resolved_week,
        max(age_weeks) filter (where status = 'resolved') as resolved_after_weeks
    from status
    group by episode_id
)

select
    l.as_of_date,
    e.episode_id,
    e.comparison_group,
    e.smo_id,
    e.study_id,
    e.site_id,
    e.kri_id,
    e.first_flagged_week,
    e.last_flagged_week,
    e.weeks_flagged,
    case e.peak_rank when 2 then 'red' else 'amber' end as peak_severity,
    e.last_flag,
    e.resolved_week,
    case when e.resolved_week is null then 'open' else 'resolved' end as status,
    -- new / persisting / resolved in the latest as-of week; null when the episode resolved
    -- earlier or the KRI was not evaluated this week
    s.status as status_this_week,
    -- weeks since the first flagged week (that week counting 1) for an open episode; the weeks
    -- it lasted for a resolved one
    coalesce(
        e.resolved_after_weeks,
        (date_diff('day', date_trunc('week', e.first_flagged_week), date_trunc('week', l.as_of_date))
            // 7 + 1)::integer
    ) as age_weeks
from episodes as e
cross join latest as l
left join status as s on s.episode_id = e.episode_id and s.as_of_date = l.as_of_date
