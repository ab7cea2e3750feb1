select * from {{ source('registry', 'sponsors') }}
