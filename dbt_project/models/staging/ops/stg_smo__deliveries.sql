select * from {{ source('ops', 'deliveries') }}
