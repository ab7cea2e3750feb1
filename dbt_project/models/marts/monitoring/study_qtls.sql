-- Study-level quality tolerance limits (ICH E6(R3) 3.10.1.3) per as-of week: each parameter
-- against its pre-set limit, and whether an exceedance has a recorded evaluation
-- (seed qtl_evaluations).
with study_kpis as (
    select * from {{ ref('int_kpi__rollups') }} where level = 'study'
)

select
    s.as_of_date,
    s.study_id,
    q.qtl_id,
    q.description,
    q.version as qtl_version,
    s.numerator,
    s.denominator,
    s.value,
    q.limit_value,
    q.direction,
    coalesce(
        case q.direction when 'high' then s.value > q.limit_value else s.value < q.limit_value end,
        false
    ) as is_exceeded,
    e.evaluated_on,
    e.evaluated_by,
    e.conclusion,
    case
        when s.value is null then 'not_evaluable'
        when not coalesce(
            case q.direction when 'high' then s.value > q.limit_value else s.value < q.limit_value end,
            false
        ) then 'within_limit'
        when e.evaluated_on is not null then 'exceeded_evaluated'
        else 'exceeded_evaluation_due'
    end as qtl_status
from study_kpis as s
join {{ ref('qtl_definitions') }} as q on q.kpi_id = s.kpi_id
left join {{ ref('qtl_evaluations') }} as e
    on e.study_id = s.study_id and e.qtl_id = q.qtl_id and e.evaluated_on <= s.as_of_date
qualify row_number() over (
    partition by s.as_of_date, s.study_id, q.qtl_id order by e.evaluated_on desc nulls last, e.evaluated_by, e.conclusion
) = 1
