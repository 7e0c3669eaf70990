with source as (
    select * from {{ source('raw', 'customers') }}
),

renamed as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(signup_date as date) as signup_date,
        lower(plan) as plan,
        lower(region) as region,
        lower(channel) as channel
    from source
)

select * from renamed
