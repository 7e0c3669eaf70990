with source as (
    select * from {{ source('raw', 'payment_failures') }}
),

renamed as (
    select
        cast(invoice_id as bigint) as invoice_id,
        cast(customer_id as bigint) as customer_id,
        cast(failed_at as date) as failed_on,
        reason
    from source
)

select * from renamed
