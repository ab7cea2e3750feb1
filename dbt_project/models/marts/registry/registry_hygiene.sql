-- Where the registry and the SMO rosters disagree, one row per finding:
--   study_missing_from_registry: a roster NCT id with no registry record (one finding for the
--     study; its sites are then not each reported missing);
--   site_missing_from_registry: an active roster site (ACTIVATED or ENROLLING) with no location of
--     its study's record matching on normalised facility (Jaro-Winkler >= 0.9), city (>= 0.85,
--     when both are given) and country;
--   registry_status_mismatch: the record says the study is not recruiting (yet) while rosters
--     show randomizations in the last 90 days, or recruiting while no roster site is active;
--   registry_enrollment_exceeded: rosters have randomized more than the registry's enrollment;
--   registry_record_stale: the record was last updated more than 12 months before the as-of date.
with as_of as (
    select max(as_of_date) as as_of_date from {{ ref('int_calendar__as_of_weeks') }}
),

roster as (
    select
        s.*,
        trim(regexp_replace(
            regexp_replace(lower(strip_accents(s.site_name)), '[''’`]', '', 'g'),
            '[^\pL\pN]+', ' ', 'g'
        )) as facility_normalised
    from {{ ref('stg_smo__sites') }} as s
),

locations as (
    select l.*, c.country_code
    from {{ ref('stg_ctgov__locations') }} as l
    left join {{ ref('country_names') }} as c on c.registry_country_name = l.country
),

registered as (
    select distinct nct_id from {{ ref('stg_ctgov__studies') }} where role = 'portfolio'
),

missing_studies as (
    select
        r.nct_id, min(r.study_id) as study_id, null::varchar as smo_id, null::varchar as site_id,
        'study_missing_from_registry' as finding,
        count(*) || ' roster site(s) of ' || string_agg(distinct r.smo_id, ', ' order by r.smo_id)
            as roster_value,
        'no registry record for ' || r.nct_id as registry_value
    from roster as r
    where r.nct_id is not null and r.nct_id not in (select nct_id from registered)
    group by r.nct_id
),

missing as (
    select
        r.nct_id, r.study_id, r.smo_id, r.site_id,
        'site_missing_from_registry' as finding,
        r.site_name || ', ' || coalesce(r.city, '?') || ', ' || r.country as roster_value,
        null::varchar as registry_value
    from roster as r
    where r.status in ('ACTIVATED', 'ENROLLING')
        and r.nct_id in (select nct_id from registered)
        and not exists (
            select 1 from locations as l
            where l.nct_id = r.nct_id
                and l.country_code = r.country
                and jaro_winkler_similarity(l.facility_normalised, r.facility_normalised) >= 0.9
                and (l.city is null or r.city is null
                    or jaro_winkler_similarity(lower(strip_accents(l.city)), lower(strip_accents(r.city))) >= 0.85)
        )
),

study_roster as (
    select
        s.nct_id,
        min(s.study_id) as study_id,
        count(*) filter (where s.status in ('ACTIVATED', 'ENROLLING')) as sites_active,
        (select count(*) from {{ ref('stg_smo__subjects') }} as j
            where j.study_id = min(s.study_id) and j.randomized_date is not null) as randomized,
        (select count(*) from {{ ref('stg_smo__subjects') }} as j, as_of
            where j.study_id = min(s.study_id)
                and j.randomized_date > as_of.as_of_date - interval 90 day) as randomized_90d
    from {{ ref('stg_smo__sites') }} as s
    where s.nct_id is not null
    group by s.nct_id
),

registry as (
    select r.*, st.*  exclude (nct_id)
    from {{ ref('stg_ctgov__studies') }} as r
    join study_roster as st using (nct_id)
    where r.role = 'portfolio'
),

study_findings as (
    select nct_id, study_id, null::varchar as smo_id, null::varchar as site_id,
        'registry_status_mismatch' as finding,
        randomized_90d || ' randomized in the last 90 days; ' || sites_active || ' active sites' as roster_value,
        overall_status as registry_value
    from registry
    where (overall_status in ('NOT_YET_RECRUITING', 'WITHDRAWN', 'ACTIVE_NOT_RECRUITING',
            'COMPLETED', 'TERMINATED', 'SUSPENDED') and randomized_90d > 0)
        or (overall_status in ('RECRUITING', 'ENROLLING_BY_INVITATION') and sites_active = 0)
    union all
    select nct_id, study_id, null, null, 'registry_enrollment_exceeded',
        randomized || ' randomized', enrollment_count || ' (' || enrollment_type || ')'
    from registry
    where enrollment_count is not null and randomized > enrollment_count
    union all
    select nct_id, study_id, null, null, 'registry_record_stale',
        null, 'last updated ' || last_update_post_date
    from registry, as_of
    where last_update_post_date < as_of.as_of_date - interval 365 day
)

select as_of.as_of_date, f.*
from (
    select * from missing_studies
    union all select * from missing
    union all select * from study_findings
) as f, as_of
