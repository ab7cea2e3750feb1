{#- Warehouse gate for the sponsor's oversight actions (spec 2.5): a SITE_FLAG action must target a
    site x KRI that was flagged (amber or red, in either comparison) in some as-of week on or
    before the delivery date of the list it came in. Failing rows name the sender as smo_id
    (SPONSOR), so isolation pulls that actions list and the SMOs' marts still publish. -#}
{% test actions_target_flagged_sites(model, flags) %}
select
    a.sender_id as smo_id,
    a.study_id,
    a.action_id,
    a.site_id,
    a.kri_id,
    a.delivery_id,
    a.source_row
from {{ model }} as a
where a.target_type = 'SITE_FLAG'
    and not exists (
        select 1
        from {{ flags }} as f
        where f.study_id = a.study_id
            and f.site_id = a.site_id
            and f.kri_id = a.kri_id
            and f.flag in ('amber', 'red')
            and f.as_of_date <= a.delivery_date
    )
{% endtest %}
