select * from {{ source('registry', 'studies') }}
