with source as (
    select * from {{ source('raw', 'usage_daily') }}
),

renamed as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(usage_date as date) as usage_date,
        cast(sessions as integer) as sessions,
        cast(minutes as double precision) as minutes
    from source
)

select * from renamed
