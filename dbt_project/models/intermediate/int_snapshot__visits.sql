{{ config(materialized='view') }}
-- A view: one model reads it (int_site_week__visits) and one test checks it, so a table only wrote
-- every week's visits to disk again (6.7M rows and 11 s of a `large` build).
-- Visits as of each week with the subject's site (the visits feed carries no site).
with visits as (
    {{ snapshot_as_of('visits') }}
)

select
    v.*,
    s.site_id
from visits as v
left join {{ ref('int_snapshot__subjects') }} as s
    on s.as_of_date = v.as_of_date
    and s.smo_id = v.smo_id
    and s.study_id = v.study_id
    and s.subject_id = v.subject_id
