{{ config(meta={'dagster': {'ref': {'name': 'deliveries_used'}}}) }}
-- Lineage: every site row of the latest week traces to a sites delivery in deliveries_used.
select e.*
from {{ ref('site_enrollment') }} as e
left join {{ ref('deliveries_used') }} as d
    on d.as_of_date = e.as_of_date and d.smo_id = e.smo_id and d.study_id = e.study_id
    and d.feed = 'sites' and d.delivery_id = e.sites_delivery_id
where d.delivery_id is null
