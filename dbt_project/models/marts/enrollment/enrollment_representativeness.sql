-- Representativeness of enrollment (spec 3.2): per as-of week, study, SMO within the study and
-- site, each plan group's share of the randomized subjects against the study's diversity plan
-- (seeds/diversity_plans.csv), plus a NOT IN PLAN remainder row so shares add up to 1. Flags
-- (seeds/kri_definitions.csv, KPI randomized_group_share): a study or SMO whose share is below
-- the group's minimum once min_denominator (20) are randomized; sites by the funnel within the
-- study. Flags are computed on the real counts; then cells under 5 subjects, their complement
-- and units under 5 are suppressed (macros/suppression.sql) before anything is published.
-- An SMO whose subjects delivery did not carry a dimension's column has no data for it, never 0.
{%- set dimensions = ['sex', 'age_group', 'race', 'ethnicity'] %}
{%- set columns = {'sex': 'sex', 'age_group': 'age or age_group', 'race': 'race', 'ethnicity': 'ethnic'} %}
with subjects as (
    select * from {{ ref('int_enrollment__subject_groups') }}
),

plans as (
    select * from {{ ref('diversity_plans') }}
),

plan_groups as (
    -- every group of the plan, plus the remainder of each planned dimension
    select study_id, plan_id, plan_version, dimension, group_code, target_share, minimum_share
    from plans
    union all
    select distinct
        study_id, plan_id, plan_version, dimension, 'NOT IN PLAN', null::double, null::double
    from plans
),

units as (
    -- study, SMO within the study and site, per dimension; the denominator counts only the
    -- subjects of SMOs that carried the dimension's column
    select
        as_of_date,
        case when grouping(site_id) = 0 then 'site' when grouping(smo_id) = 0 then 'smo' else 'study' end
            as level,
        study_id,
        smo_id,
        site_id,
        country,
        dimension,
        bool_or(is_delivered) as is_delivered,
        count(*) filter (where is_delivered) as randomized_with_dimension,
        string_agg(distinct smo_id, ', ' order by smo_id) filter (where not is_delivered)
            as smos_without_data
    from subjects
    group by grouping sets (
        (as_of_date, study_id, dimension),
        (as_of_date, study_id, smo_id, dimension),
        (as_of_date, study_id, smo_id, site_id, country, dimension)
    )
),

cells as (
    select
        as_of_date,
        case when grouping(site_id) = 0 then 'site' when grouping(smo_id) = 0 then 'smo' else 'study' end
            as level,
        study_id,
        smo_id,
        site_id,
        dimension,
        group_code,
        count(*) as randomized_in_group
    from subjects
    where is_delivered
    group by grouping sets (
        (as_of_date, study_id, dimension, group_code),
        (as_of_date, study_id, smo_id, dimension, group_code),
        (as_of_date, study_id, smo_id, site_id, dimension, group_code)
    )
),

measured as (
    select
        u.as_of_date,
        u.level,
        u.study_id,
        u.smo_id,
        u.site_id,
        u.country,
        u.dimension,
        coalesce(g.group_code, 'NOT IN PLAN') as group_code,
        g.plan_id,
        g.plan_version,
        g.target_share,
        g.minimum_share,
        case when u.is_delivered then u.randomized_with_dimension end as randomized_with_dimension,
        case when u.is_delivered and g.plan_id is not null then coalesce(c.randomized_in_group, 0) end
            as randomized_in_group,
        case
            when not exists (select 1 from plans as p where p.study_id = u.study_id)
                then 'no diversity plan for this study'
            when g.plan_id is null then 'no ' || u.dimension || ' groups in the diversity plan'
            when not u.is_delivered then case u.dimension
                {%- for d in dimensions %}
                when '{{ d }}' then 'no {{ columns[d] }} column delivered'
                {%- endfor %}
            end
        end as no_data_reason,
        case when u.level = 'study' then u.smos_without_data end as smos_without_data
    from units as u
    left join plan_groups as g on g.study_id = u.study_id and g.dimension = u.dimension
    left join cells as c
        on c.as_of_date = u.as_of_date
        and c.level = u.level
        and c.study_id = u.study_id
        and c.smo_id is not distinct from u.smo_id
        and c.site_id is not distinct from u.site_id
        and c.dimension = u.dimension
        and c.group_code = g.group_code
),

shares as (
    select
        *,
        {{ safe_ratio('randomized_in_group', 'randomized_with_dimension') }} as share
    from measured
),

unit_flags as (
    -- study and SMO: the share against the plan's minimum, once min_denominator are randomized
    select
        s.*,
        k.kri_id,
        k.version as kri_version,
        null::double as z_score,
        case
            when s.no_data_reason is not null then 'no_data'
            when s.minimum_share is null or s.randomized_with_dimension < k.min_denominator
                then 'not_evaluated'
            else {{ threshold_flag('s.share - s.minimum_share', 'k.direction', 'k.amber_threshold', 'k.red_threshold') }}
        end as flag
    from shares as s
    join {{ ref('kri_definitions') }} as k on k.kpi_id = 'randomized_group_share' and k.level = s.level
    where s.level in ('study', 'smo')
),

funnel_inputs as (
    select
        as_of_date,
        study_id,
        smo_id,
        site_id,
        dimension,
        group_code,
        'randomized_group_share' as kpi_id,
        randomized_in_group as numerator,
        randomized_with_dimension as denominator,
        1 as multiplier,
        share as value
    from shares
    where level = 'site' and no_data_reason is null and minimum_share is not null
),

site_funnel as (
    {{ funnel_flags('funnel_inputs', 'site', ['study_id', 'dimension', 'group_code'], 'study') }}
),

site_flags as (
    select
        s.*,
        k.kri_id,
        k.version as kri_version,
        f.z_score,
        case
            when s.no_data_reason is not null then 'no_data'
            else coalesce(f.flag, 'not_evaluated')
        end as flag
    from shares as s
    join {{ ref('kri_definitions') }} as k on k.kpi_id = 'randomized_group_share' and k.level = 'site'
    left join site_funnel as f
        on f.as_of_date = s.as_of_date
        and f.study_id = s.study_id
        and f.smo_id = s.smo_id
        and f.site_id = s.site_id
        and f.dimension = s.dimension
        and f.group_code = s.group_code
    where s.level = 'site'
),

flagged as (
    select
        *,
        (share - target_share) * 100 as gap_pp
    from (
        select * from unit_flags
        union all by name
        select * from site_flags
    )
),

published as (
    {{ suppress_small_cells(
        'flagged',
        partition_by=['as_of_date', 'level', 'study_id', 'smo_id', 'site_id', 'dimension'],
        cell='randomized_in_group',
        denominator='randomized_with_dimension',
        tiebreak='group_code',
        blank=['randomized_in_group', 'share', 'gap_pp', 'z_score'],
    ) }}
)

select
    as_of_date,
    level,
    study_id,
    smo_id,
    site_id,
    country,
    dimension,
    group_code,
    plan_id,
    plan_version,
    target_share,
    minimum_share,
    randomized_with_dimension,
    randomized_in_group,
    share,
    gap_pp,
    suppressed,
    suppression_reason,
    kri_id,
    kri_version,
    z_score,
    flag,
    no_data_reason,
    smos_without_data
from published
