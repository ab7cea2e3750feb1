-- One row per problem in seeds/diversity_plans.csv, naming the study, dimension, group and rule:
-- the minimum above the target, more than one plan id or version per study, a reserved group
-- code, age bounds on a non-age row, an age band whose code does not say its bounds, or two age
-- bands of a study that overlap (a subject must fall into one band only).
with plans as (
    select * from {{ ref('diversity_plans') }}
),

bands as (
    select *, coalesce(age_max, 999) as upper_bound
    from plans
    where dimension = 'age_group'
)

select study_id, dimension, group_code, 'minimum_share above target_share' as rule
from plans
where minimum_share > target_share

union all

select study_id, null, null, 'more than one plan_id or plan_version'
from plans
group by study_id
having count(distinct plan_id) > 1 or count(distinct plan_version) > 1

union all

select study_id, dimension, group_code, 'NOT IN PLAN is the mart''s remainder row'
from plans
where upper(group_code) = 'NOT IN PLAN'

union all

select study_id, dimension, group_code, 'age bounds on a row that is not age_group'
from plans
where dimension <> 'age_group' and (age_min is not null or age_max is not null)

union all

select study_id, dimension, group_code, 'age band code does not match age_min..age_max'
from bands
where age_min is null
    or age_max < age_min
    or group_code <> case when age_max is null then age_min || '+' else age_min || '-' || age_max end

union all

select a.study_id, a.dimension, a.group_code || ' overlaps ' || b.group_code, 'age bands overlap'
from bands as a
join bands as b
    on a.study_id = b.study_id
    and a.group_code < b.group_code
    and a.age_min <= b.upper_bound
    and b.age_min <= a.upper_bound
