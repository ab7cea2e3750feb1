{#- Small-cell suppression of published demographic counts, the one place the rule lives.
    `relation` has one row per cell (a group within a unit): `cell` is its count, `denominator`
    the unit's total, `partition_by` the unit's columns, `tiebreak` orders equal cells.
    - a cell of 1 .. min_cell - 1 is suppressed ('cell under 5');
    - in a unit with exactly one such cell, the smallest other non-zero cell is suppressed too
      ('complement of a suppressed cell'), so the first cannot be recovered by subtraction from
      the published denominator;
    - a unit whose denominator is under min_cell has every cell suppressed ('unit under 5
      subjects').
    Zero cells are published ("no women enrolled" is the finding and names no one). A NULL cell
    (no data) is never suppressed. Adds `suppressed` (never NULL) and `suppression_reason`, and
    sets the `blank` columns (the cell and what it can be computed back from) to NULL where
    suppressed. Apply it after flags are computed: flags use the real counts. -#}
{% macro suppress_small_cells(relation, partition_by, cell, denominator, tiebreak, blank, min_cell=none) %}
{%- set n = min_cell if min_cell is not none else var('small_cell_min') -%}
{%- set unit = 'partition by ' ~ partition_by | join(', ') -%}
select
    * exclude (_unit_small, _primary, _primaries, _rank_large)
        replace (
            {%- for column in blank %}
            case when _unit_small or _primary or (_primaries = 1 and _rank_large = 1) then null
                else {{ column }} end as {{ column }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        ),
    coalesce(_unit_small or _primary or (_primaries = 1 and _rank_large = 1), false) as suppressed,
    case
        when _unit_small then 'unit under {{ n }} subjects'
        when _primary then 'cell under {{ n }}'
        when _primaries = 1 and _rank_large = 1 then 'complement of a suppressed cell'
    end as suppression_reason
from (
    select
        *,
        {{ cell }} is not null and {{ denominator }} < {{ n }} as _unit_small,
        {{ cell }} between 1 and {{ n }} - 1 as _primary,
        count(*) filter (where {{ cell }} between 1 and {{ n }} - 1) over ({{ unit }}) as _primaries,
        case when {{ cell }} >= {{ n }} then row_number() over (
            {{ unit }}, {{ cell }} >= {{ n }} order by {{ cell }}, {{ tiebreak }}
        ) end as _rank_large
    from {{ relation }}
)
{% endmacro %}
