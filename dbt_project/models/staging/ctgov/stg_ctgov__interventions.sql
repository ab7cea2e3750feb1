select * from {{ source('registry', 'interventions') }}
