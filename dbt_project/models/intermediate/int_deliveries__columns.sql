{{ config(materialized='table') }}
-- Per accepted delivery, how many rows have a value in each canonical column. A column an SMO's
-- format cannot carry (SDTM has no CRF entry date; a profile that maps no such column) is NULL in
-- every row of every one of its deliveries: that is how data sufficiency tells "not carried"
-- from "not happened yet" without reading profiles.
{% set feeds = ['sites', 'subjects', 'visits', 'deviations', 'payments', 'staffing'] %}
{% for feed in feeds %}
{% if not loop.first %}union all by name{% endif %}
(
    with counted as (
        select
            delivery_id,
            any_value(smo_id) as smo_id,
            any_value(delivery_date) as delivery_date,
            count(columns(* exclude (delivery_id, smo_id, delivery_date, source_row)))
        from {{ ref('stg_smo__' ~ feed ~ '_history') }}
        group by delivery_id
    )

    select '{{ feed }}' as feed, *
    from (
        unpivot counted
        on columns(* exclude (delivery_id, smo_id, delivery_date))
        into name column_name value non_null_rows
    )
)
{% endfor %}
