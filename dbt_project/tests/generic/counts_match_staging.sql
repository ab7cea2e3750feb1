{#- Warehouse gate reconciliation: per SMO and study, the sum of `count_column` in the mart equals
    the number of rows of the current staging snapshot (every row counted once, none lost). -#}
{% test counts_match_staging(model, count_column, staging_model) %}
with marts as (
    select smo_id, study_id, sum({{ count_column }}) as counted
    from {{ model }}
    group by all
),

staging as (
    select smo_id, study_id, count(*) as counted
    from {{ staging_model }}
    group by all
)

select *
from staging as s
left join marts as m using (smo_id, study_id)
where m.counted is distinct from s.counted
{% endtest %}
