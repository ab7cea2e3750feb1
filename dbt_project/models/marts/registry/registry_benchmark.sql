-- Each study's and site's enrollment rate (randomized per site-month) as a percentile of its
-- registry peer cohort: completed studies sharing the study's first condition and its last
-- phase, whose rate is ACTUAL enrollment / locations / months from ACTUAL start to ACTUAL primary
-- completion (an understatement of the recruitment-period rate, spec 3).
-- A percentile needs at least var('peer_min_cohort') peers (SMO_PEER_MIN_COHORT, default 5):
-- below it the percentile and the peer rate statistics are NULL and peer_percentile_reason says
-- why (`too few peers (n)`, no NCT id, study not in the registry, no enrollment rate); the peer
-- count is always given.
with portfolio as (
    select
        s.nct_id,
        c.condition,
        s.phases[len(s.phases)] as phase
    from {{ ref('stg_ctgov__studies') }} as s
    join {{ ref('stg_ctgov__conditions') }} as c
        on c.nct_id = s.nct_id and c.kind = 'reported' and c.seq = 1
    where s.role = 'portfolio'
),

peers as (
    select
        s.nct_id,
        s.enrollment_count::double / s.location_count
            / (date_diff('day', s.start_date, s.primary_completion_date) / 30.4375) as peer_rate
    from {{ ref('stg_ctgov__studies') }} as s
    where s.role = 'peer'
        and s.enrollment_type = 'ACTUAL'
        and s.start_date_type = 'ACTUAL'
        and s.primary_completion_date_type = 'ACTUAL'
        and s.location_count > 0
        and s.primary_completion_date > s.start_date
),

cohorts as (
    select distinct p.nct_id as portfolio_nct_id, pe.nct_id as peer_nct_id, pe.peer_rate
    from portfolio as p
    join {{ ref('stg_ctgov__conditions') }} as c
        on lower(c.condition) = lower(p.condition) and c.kind = 'reported'
    join {{ ref('stg_ctgov__studies') }} as s on s.nct_id = c.nct_id and list_contains(s.phases, p.phase)
    join peers as pe on pe.nct_id = s.nct_id
),

cohort_stats as (
    select
        portfolio_nct_id,
        count(*)::integer as peer_studies,
        median(peer_rate) as peer_median_rate,
        quantile_cont(peer_rate, 0.25) as peer_p25_rate,
        quantile_cont(peer_rate, 0.75) as peer_p75_rate
    from cohorts
    group by 1
),

study_nct as (
    select study_id, min(nct_id) as nct_id
    from {{ ref('int_site_week__enrollment') }}
    where {{ latest_week() }} and nct_id is not null
    group by 1
),

rates as (
    select 'study' as level, r.as_of_date, r.study_id, null::varchar as smo_id,
        null::varchar as site_id, r.value as enrollment_rate
    from {{ ref('int_kpi__rollups') }} as r
    where r.level = 'study' and r.kpi_id = 'enrollment_rate' and {{ latest_week('r.as_of_date') }}
    union all
    select 'site', r.as_of_date, r.study_id, r.smo_id, r.site_id, r.value
    from {{ ref('int_site_week__kpi_inputs') }} as r
    where r.kpi_id = 'enrollment_rate' and r.value is not null and {{ latest_week('r.as_of_date') }}
),

registered as (
    select distinct nct_id from {{ ref('stg_ctgov__studies') }} where role = 'portfolio'
),

benchmarked as (
    select
        r.*,
        n.nct_id,
        g.nct_id is not null as in_registry,
        coalesce(cs.peer_studies, 0) as peer_studies,
        coalesce(cs.peer_studies, 0) >= {{ var('peer_min_cohort') }}::integer
            and g.nct_id is not null as enough_peers,
        cs.peer_median_rate,
        cs.peer_p25_rate,
        cs.peer_p75_rate
    from rates as r
    left join study_nct as n using (study_id)
    left join registered as g on g.nct_id = n.nct_id
    left join cohort_stats as cs on cs.portfolio_nct_id = n.nct_id
)

select
    r.as_of_date,
    r.level,
    r.study_id,
    r.smo_id,
    r.site_id,
    r.nct_id,
    r.enrollment_rate,
    r.peer_studies,
    case when r.enough_peers then r.peer_median_rate end as peer_median_rate,
    case when r.enough_peers then r.peer_p25_rate end as peer_p25_rate,
    case when r.enough_peers then r.peer_p75_rate end as peer_p75_rate,
    case when r.enough_peers and r.enrollment_rate is not null then (
        select count(*) filter (where c.peer_rate <= r.enrollment_rate)::double
            / nullif(count(*), 0) * 100
        from cohorts as c
        where c.portfolio_nct_id = r.nct_id
    ) end as peer_percentile,
    case
        when r.nct_id is null then 'no NCT id on the site roster'
        when not r.in_registry then 'study not in the registry'
        when not r.enough_peers then 'too few peers (' || r.peer_studies || ')'
        when r.enrollment_rate is null then 'no enrollment rate'
    end as peer_percentile_reason
from benchmarked as r
