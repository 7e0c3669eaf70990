with source as (
    select * from {{ source('raw', 'invoices') }}
),

renamed as (
    select
        cast(invoice_id as bigint) as invoice_id,
        cast(customer_id as bigint) as customer_id,
        cast(invoice_date as date) as invoice_date,
        cast(amount as double precision) as amount,
        status = 'failed' as is_failed
    from source
)

select * from renamed
