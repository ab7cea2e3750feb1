-- The KRI definitions in force (seeds/kri_definitions.csv), published so BI tools and the report
-- read each KRI's readable name, unit and thresholds from the same rows the flags were computed
-- with, never from a copy in code.
select
    kri_id,
    level,
    kpi_id,
    label,
    unit,
    denominator_label,
    method,
    kri_type,
    direction,
    amber_threshold,
    red_threshold,
    min_denominator,
    weight,
    version,
    rationale
from {{ ref('kri_definitions') }}
