{#- Changes an SMO made to history between two consecutive deliveries of one feed (spec 6):
    a value of `fields` that was filled in the earlier delivery and differs in the later one,
    or a row of the earlier delivery that is missing from the later one. Values appearing
    where there were none (a visit entered, a payment made) are progress, not changes.
    `deletable` restricts which missing rows count (e.g. only visits that took place). -#}
{% macro history_changes(feed, keys, fields, per_study=true, site_column='p.site_id', deletable='true') %}
{%- set study = 'h.study_id' if per_study else "'*'" -%}
{%- set join_keys = [] -%}
{%- for k in keys %}{% do join_keys.append('n.' ~ k ~ ' = p.' ~ k) %}{% endfor -%}
with pairs as (
    select * from {{ ref('int_deliveries__by_study') }}
    where feed = '{{ feed }}' and previous_delivery_id is not null
),

earlier as (
    select h.*, {{ study }} as covered_study, p.delivery_id as later_delivery_id,
        p.delivery_date as later_delivery_date
    from {{ ref('stg_smo__' ~ feed ~ '_history') }} as h
    join pairs as p on p.previous_delivery_id = h.delivery_id and p.study_id = {{ study }}
),

later as (
    select h.*, {{ study }} as covered_study
    from {{ ref('stg_smo__' ~ feed ~ '_history') }} as h
    join pairs as p on p.delivery_id = h.delivery_id and p.study_id = {{ study }}
),

compared as (
    select
        p.smo_id,
        p.covered_study,
        {{ site_column if site_column else 'null' }} as site_id,
        {% for k in keys %}p.{{ k }}::varchar{% if not loop.last %} || '|' || {% endif %}{% endfor %} as record_key,
        p.delivery_id as previous_delivery_id,
        p.delivery_date as previous_delivery_date,
        p.later_delivery_id as delivery_id,
        p.later_delivery_date as delivery_date,
        n.{{ keys[0] }} is null as is_deleted,
        [
            {%- for f in fields %}
            {'field': '{{ f }}', 'old_value': p.{{ f }}::varchar, 'new_value': n.{{ f }}::varchar}{% if not loop.last %},{% endif %}
            {%- endfor %}
        ] as field_values,
        {{ deletable | replace('{row}', 'p') }} as is_deletable
    from earlier as p
    left join later as n
        on n.delivery_id = p.later_delivery_id
        and n.covered_study = p.covered_study
        and {{ join_keys | join(' and ') }}
)

select
    smo_id, covered_study as study_id, site_id, '{{ feed }}' as feed, record_key,
    'deleted' as change_kind, null::varchar as field, null::varchar as old_value,
    null::varchar as new_value,
    previous_delivery_id, previous_delivery_date, delivery_id, delivery_date
from compared
where is_deleted and is_deletable

union all

select
    smo_id, covered_study, site_id, '{{ feed }}', record_key,
    'changed', fv.field, fv.old_value, fv.new_value,
    previous_delivery_id, previous_delivery_date, delivery_id, delivery_date
from (select *, unnest(field_values) as fv from compared where not is_deleted)
where fv.old_value is not null and fv.old_value is distinct from fv.new_value
{% endmacro %}
