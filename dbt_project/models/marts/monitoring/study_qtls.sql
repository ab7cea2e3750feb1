-- Study-level quality tolerance limits (ICH E6(R3) 3.10.1.3) per as-of week: each parameter
-- against its pre-set limit, when the current run of exceeded weeks began, and its evaluation:
-- the latest oversight action on that QTL (target_type QTL, not cancelled) opened on or after
-- the exceedance began, as the sponsor's actions list stood that week. The exceedance counts as
-- evaluated once that action is DONE; its outcome is the conclusion.
with study_kpis as (
    select * from {{ ref('int_kpi__rollups') }} where level = 'study'
),

measured as (
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
        ) as is_exceeded
    from study_kpis as s
    join {{ ref('qtl_definitions') }} as q on q.kpi_id = s.kpi_id
),

runs as (
    -- a week without a value (not evaluable) neither starts nor ends an exceedance
    select
        *,
        count(*) filter (where not is_exceeded and value is not null) over (
            partition by study_id, qtl_id order by as_of_date
            rows between unbounded preceding and current row
        ) as run_number
    from measured
),

started as (
    select
        *,
        case when is_exceeded then
            min(as_of_date) filter (where is_exceeded) over (
                partition by study_id, qtl_id, run_number order by as_of_date
                rows between unbounded preceding and current row
            )
        end as exceeded_since
    from runs
),

evaluations as (
    select
        s.as_of_date,
        s.study_id,
        s.qtl_id,
        a.action_id,
        a.opened_date,
        a.owner,
        a.status,
        a.closed_date,
        a.outcome
    from started as s
    join {{ ref('int_actions__in_effect') }} as a
        on a.as_of_date = s.as_of_date
        and a.target_type = 'QTL'
        and a.study_id = s.study_id
        and a.qtl_id = s.qtl_id
        and a.status <> 'CANCELLED'
        and a.opened_date >= s.exceeded_since
    qualify row_number() over (
        partition by s.as_of_date, s.study_id, s.qtl_id
        order by a.opened_date desc, a.action_id desc
    ) = 1
)

select
    s.as_of_date,
    s.study_id,
    s.qtl_id,
    s.description,
    s.qtl_version,
    s.numerator,
    s.denominator,
    s.value,
    s.limit_value,
    s.direction,
    s.is_exceeded,
    s.exceeded_since,
    e.action_id as evaluation_action_id,
    e.status as evaluation_status,
    case when e.status = 'DONE' then e.closed_date end as evaluated_on,
    e.owner as evaluated_by,
    case when e.status = 'DONE' then e.outcome end as conclusion,
    case
        when s.value is null then 'not_evaluable'
        when not s.is_exceeded then 'within_limit'
        when e.status = 'DONE' then 'exceeded_evaluated'
        else 'exceeded_evaluation_due'
    end as qtl_status
from started as s
left join evaluations as e using (as_of_date, study_id, qtl_id)
