select * from {{ source('registry', 'locations') }}
