select * from {{ source('registry', 'conditions') }}
