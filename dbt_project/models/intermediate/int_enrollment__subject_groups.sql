{{ config(materialized='table') }}
-- Each randomized subject of the snapshot in effect, per as-of week and plan dimension (sex,
-- age_group, race, ethnicity), with the plan group it counts in (group_code; 'NOT IN PLAN' when
-- its value is in no group of the study's diversity plan, including UNKNOWN, NOT REPORTED and
-- blank) and whether its SMO's subjects delivery in effect carried the dimension's column at all
-- (a column with no value in any row of that delivery was not carried: "no data", never zero).
-- Age group: from `age` through the plan's bands; without an age, a delivered `age_group` band
-- that lies inside one plan band; otherwise NOT IN PLAN. Subject-level: never published.
with randomized as (
    select
        s.as_of_date,
        s.smo_id,
        s.study_id,
        s.site_id,
        s.subject_id,
        t.country,
        s.sex,
        s.age,
        s.race,
        s.ethnic,
        try_cast(regexp_extract(s.age_group, '^\s*(\d+)', 1) as integer) as band_min,
        case
            when regexp_matches(s.age_group, '^\s*\d+\s*\+\s*$') then 1000
            else try_cast(regexp_extract(s.age_group, '^\s*\d+\s*-\s*(\d+)\s*$', 1) as integer)
        end as band_max
    from {{ ref('int_snapshot__subjects') }} as s
    left join {{ ref('int_snapshot__sites') }} as t
        on t.as_of_date = s.as_of_date
        and t.smo_id = s.smo_id
        and t.study_id = s.study_id
        and t.site_id = s.site_id
    where s.randomized_date is not null
),

carried as (
    -- which dimensions each SMO x study's subjects delivery in effect carried
    select
        e.as_of_date,
        e.smo_id,
        e.study_id,
        coalesce(bool_or(c.column_name = 'sex' and c.non_null_rows > 0), false) as sex,
        coalesce(bool_or(c.column_name in ('age', 'age_group') and c.non_null_rows > 0), false)
            as age_group,
        coalesce(bool_or(c.column_name = 'race' and c.non_null_rows > 0), false) as race,
        coalesce(bool_or(c.column_name = 'ethnic' and c.non_null_rows > 0), false) as ethnicity
    from {{ ref('int_deliveries__in_effect') }} as e
    left join {{ ref('int_deliveries__columns') }} as c
        on c.delivery_id = e.delivery_id and c.feed = 'subjects'
    where e.feed = 'subjects'
    group by e.as_of_date, e.smo_id, e.study_id
),

plans as (
    select * from {{ ref('diversity_plans') }}
),

age_bands as (
    select study_id, group_code, age_min, coalesce(age_max, 1000) as age_max
    from plans
    where dimension = 'age_group'
),

by_age as (
    select
        r.as_of_date,
        r.smo_id,
        r.study_id,
        r.site_id,
        r.subject_id,
        min(b.group_code) filter (where r.age between b.age_min and b.age_max) as from_age,
        min(b.group_code) filter (
            where r.age is null and r.band_min >= b.age_min and r.band_max <= b.age_max
        ) as from_band
    from randomized as r
    left join age_bands as b on b.study_id = r.study_id
    group by r.as_of_date, r.smo_id, r.study_id, r.site_id, r.subject_id
),

long as (
    select
        r.as_of_date,
        r.smo_id,
        r.study_id,
        r.site_id,
        r.subject_id,
        r.country,
        d.dimension,
        d.value,
        d.is_delivered
    from randomized as r
    join carried as c using (as_of_date, smo_id, study_id)
    join by_age as a using (as_of_date, smo_id, study_id, site_id, subject_id)
    cross join unnest([
        {'dimension': 'sex', 'value': r.sex, 'is_delivered': c.sex},
        {'dimension': 'age_group', 'value': coalesce(a.from_age, a.from_band), 'is_delivered': c.age_group},
        {'dimension': 'race', 'value': r.race, 'is_delivered': c.race},
        {'dimension': 'ethnicity', 'value': r.ethnic, 'is_delivered': c.ethnicity}
    ]) as u(d)
)

select
    l.as_of_date,
    l.smo_id,
    l.study_id,
    l.site_id,
    l.country,
    l.subject_id,
    l.dimension,
    coalesce(p.group_code, 'NOT IN PLAN') as group_code,
    l.is_delivered
from long as l
left join plans as p
    on p.study_id = l.study_id
    and p.dimension = l.dimension
    and p.group_code = l.value
