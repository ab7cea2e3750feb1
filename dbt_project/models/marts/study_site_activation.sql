-- Share of each study's roster sites that have been activated (ACTIVATED, ENROLLING or CLOSED).
select
    study_id,
    count(*)::integer as sites_total,
    count(*) filter (where status in ('ACTIVATED', 'ENROLLING', 'CLOSED'))::integer
        as sites_activated,
    round(sites_activated / sites_total, 4)::double as share_sites_activated
from {{ ref('stg_smo__sites') }}
where status <> 'DROPPED'
group by study_id
