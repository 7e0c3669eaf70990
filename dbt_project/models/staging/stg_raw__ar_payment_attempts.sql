with source as (
    select * from {{ source('raw', 'ar_payment_attempts') }}
),

renamed as (
    select
        cast(invoice_number as varchar) as invoice_number,
        cast(attempted_at as timestamp with time zone) as attempted_at,
        lower(outcome) as outcome
    from source
),

final as (
    select
        invoice_number,
        attempted_at,
        -- The UTC date of the attempt: batchpred sets the session time zone to UTC,
        -- so the cast is the same on DuckDB and PostgreSQL.
        cast(attempted_at as date) as attempted_on,
        outcome
    from renamed
)

select * from final
