with source as (
    select * from {{ source('raw', 'cancellations') }}
),

renamed as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(cancelled_at as date) as cancelled_on,
        reason
    from source
)

select * from renamed
