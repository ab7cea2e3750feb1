select
    smo_id,
    study_id,
    site_id,
    site_name,
    upper(country) as country,
    upper(status) as status
from {{ source('raw', 'sites') }}
