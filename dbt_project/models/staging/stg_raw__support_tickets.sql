with source as (
    select * from {{ source('raw', 'support_tickets') }}
),

renamed as (
    select
        cast(ticket_id as bigint) as ticket_id,
        cast(customer_id as bigint) as customer_id,
        cast(opened_at as date) as opened_on,
        lower(category) as category,
        lower(priority) as priority
    from source
)

select * from renamed
