-- Flag lifecycle per as-of week (spec 4): for each site x KRI x comparison group, the weeks in
-- which a flag episode is new, persisting or resolved. Built from every week of site_flags, so a
-- past week rebuilds from the stored deliveries like any other mart.
-- Flagged = amber or red (both are flags in spec 4). A week with no_data or not_evaluated says
-- nothing about the flag: it neither extends nor resolves an episode and has no row here; the
-- episode continues with the next evaluated week (missing data is never green, so never
-- "resolved").
with evaluated as (
    select
        as_of_date,
        comparison_group,
        smo_id,
        study_id,
        site_id,
        kri_id,
        flag,
        flag in ('amber', 'red') as is_flagged
    from {{ ref('site_flags') }}
    where flag in ('green', 'amber', 'red')
),

marked as (
    select
        *,
        is_flagged and not coalesce(lag(is_flagged) over w, false) as starts_episode,
        not is_flagged and coalesce(lag(is_flagged) over w, false) as resolves_episode
    from evaluated
    window w as (
        partition by comparison_group, smo_id, study_id, site_id, kri_id order by as_of_date
    )
),

numbered as (
    -- gaps and islands: an episode is the flagged weeks after its start, plus the week resolving it
    select
        *,
        count(*) filter (where starts_episode) over (
            partition by comparison_group, smo_id, study_id, site_id, kri_id
            order by as_of_date rows between unbounded preceding and current row
        ) as episode_number
    from marked
),

episode_weeks as (
    select
        *,
        min(as_of_date) over e as first_flagged_week,
        max(case flag when 'red' then 2 when 'amber' then 1 end) over (
            e order by as_of_date rows between unbounded preceding and current row
        ) as peak_rank
    from numbered
    where is_flagged or resolves_episode
    window e as (partition by comparison_group, smo_id, study_id, site_id, kri_id, episode_number)
)

select
    as_of_date,
    comparison_group,
    smo_id,
    study_id,
    site_id,
    kri_id,
    -- stable across rebuilds: the episode's keys and first week, never a row number
    md5(concat_ws('|', comparison_group, smo_id, study_id, site_id, kri_id, first_flagged_week))
        as episode_id,
    case
        when resolves_episode then 'resolved'
        when starts_episode then 'new'
        else 'persisting'
    end as status,
    flag,
    first_flagged_week,
    -- calendar weeks since the first flagged week, that week counting 1; on the resolving week,
    -- the weeks the episode lasted
    (date_diff('day', date_trunc('week', first_flagged_week), date_trunc('week', as_of_date)) // 7
        + case when is_flagged then 1 else 0 end)::integer as age_weeks,
    case peak_rank when 2 then 'red' else 'amber' end as peak_severity
from episode_weeks
