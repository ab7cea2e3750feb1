-- Every file received, with its verdict; a rejected file carries the rules it broke, so the
-- report and BI tools can say why an SMO's data did not move this week. A failing cell's value is
-- quoted unless its column is free text (stg_ops__delivery_rejections keeps it); report_path is
-- a server path for data engineers and is not published (meta publish: false).
with reasons as (
    select
        delivery_id,
        string_agg(
            rule || coalesce(' on ' || column_name, '')
            || coalesce(' (' || failing_rows || case when failing_rows = 1 then ' row' else ' rows' end, ' (')
            || coalesce(', first at row ' || first_row || case
                when {{ is_free_text('column_name') }} then ', free text not quoted'
                else ': ' || first_value
            end, '') || ')',
            '; ' order by rule, column_name, first_row, first_value, failing_rows
        ) as rejection_reasons
    from {{ ref('stg_ops__delivery_rejections') }}
    group by delivery_id
)

select
    d.delivery_id,
    d.smo_id,
    d.feed,
    d.study_id,
    d.file_name,
    d.delivery_date,
    d.received_at,
    d.processed_at,
    d.status,
    d.row_count,
    d.error_count,
    case when d.status = 'REJECTED' then coalesce(r.rejection_reasons, 'rejected') end as rejection_reasons,
    d.report_path,
    d.duplicate_of,
    d.superseded_by
from {{ ref('stg_smo__deliveries') }} as d
left join reasons as r using (delivery_id)
