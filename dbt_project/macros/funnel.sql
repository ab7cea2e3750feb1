{#- Flags for KPI rows against the KRI definitions of one level, comparing each entity with its
    comparison group by the normal-approximation funnel method (gsm; Zink et al. 2018):
      binary x of n:   p = sum x / sum n,  z = (x/n - p) / sqrt(phi * p(1-p) / n)
      rate x per T:    r = sum x / sum T,  z = (x/T - r) / sqrt(phi * r / T)
    phi (over-dispersion) = mean of the unadjusted z^2 over entities at or above the minimum
    denominator, floored at 1, with the z-scores first Winsorized at the var
    `overdispersion_winsor_fraction` (default 0.1: the lowest and highest 10% are set to the 10th
    and 90th percentile), as Spiegelhalter (2005) recommends so that the outliers being looked for
    do not inflate phi and hide themselves; 0 gives the plain mean (gsm's estimate). Fixed-method KRIs compare the value itself with the thresholds.
    `inputs` needs as_of_date, kpi_id, numerator, denominator, multiplier, value. -#}
{% macro funnel_flags(inputs, level, group_by, scope) %}
{%- set g = 'partition by as_of_date, kri_id' ~ (', ' ~ group_by | join(', ') if group_by else '') -%}
with evaluated as (
    select
        i.*,
        k.kri_id,
        k.version as kri_version,
        k.method,
        k.kri_type,
        k.direction,
        k.amber_threshold,
        k.red_threshold,
        k.min_denominator,
        k.weight,
        coalesce(i.denominator, 0) >= k.min_denominator and i.value is not null as meets_minimum
    from {{ inputs }} as i
    join {{ ref('kri_definitions') }} as k on k.kpi_id = i.kpi_id and k.level = '{{ level }}'
),

grouped as (
    select
        *,
        {{ exact_sum('numerator', where='denominator > 0', over=g) }}
            / nullif({{ exact_sum('denominator', where='denominator > 0', over=g) }}, 0)
            as group_rate
    from evaluated
),

unadjusted as (
    select
        *,
        case
            when method <> 'funnel' or not meets_minimum then null
            when kri_type = 'binary' and group_rate > 0 and group_rate < 1
                then (numerator / denominator - group_rate)
                    / sqrt(group_rate * (1 - group_rate) / denominator)
            when kri_type = 'rate' and group_rate > 0
                then (numerator / denominator - group_rate) / sqrt(group_rate / denominator)
        end as z_score_unadjusted
    from grouped
),

winsor_limits as (
    select
        *,
        quantile_cont(z_score_unadjusted, {{ var('overdispersion_winsor_fraction') }}) over ({{ g }})
            as z_low,
        quantile_cont(z_score_unadjusted, 1 - {{ var('overdispersion_winsor_fraction') }}) over ({{ g }})
            as z_high
    from unadjusted
),

adjusted as (
    select
        * exclude (z_low, z_high),
        greatest(
            1.0,
            {{ exact_sum('power(least(greatest(z_score_unadjusted, z_low), z_high), 2)', over=g) }}
                / count(z_score_unadjusted) over ({{ g }})
        ) as overdispersion
    from winsor_limits
)

select
    as_of_date,
    '{{ scope }}' as comparison_group,
    * exclude (as_of_date, group_rate, overdispersion, z_score_unadjusted, meets_minimum, kpi_id),
    group_rate * multiplier as group_value,
    case when method = 'funnel' then overdispersion end as overdispersion,
    z_score_unadjusted,
    z_score_unadjusted / sqrt(overdispersion) as z_score,
    case
        when not meets_minimum then 'not_evaluated'
        when method = 'funnel' then coalesce({{ funnel_flag('z_score_unadjusted / sqrt(overdispersion)', 'direction', 'amber_threshold', 'red_threshold') }}, 'not_evaluated')
        else {{ threshold_flag('value', 'direction', 'amber_threshold', 'red_threshold') }}
    end as flag
from adjusted
{% endmacro %}

{#- One column per KPI value for the listed KPIs, from KPI rows (numerator/denominator/value). -#}
{% macro pivot_kpis(kpis) -%}
{%- for kpi in kpis %}
    max(value) filter (where kpi_id = '{{ kpi }}') as {{ kpi }}{% if not loop.last %},{% endif %}
{%- endfor %}
{%- endmacro %}
