with source as (
    select * from {{ source('raw', 'ar_invoices') }}
),

renamed as (
    select
        -- Text, with its leading zeros ('INV-00001234'): never cast to a number.
        cast(invoice_number as varchar) as invoice_number,
        cast(customer_id as bigint) as customer_id,
        cast(issued_on as date) as issued_on,
        cast(due_on as date) as due_on,
        cast(amount as double precision) as amount,
        upper(currency) as currency
    from source
),

final as (
    select
        invoice_number,
        customer_id,
        issued_on,
        due_on,
        -- Payment terms: days from issue to due (7, 14 or 30).
        cast(due_on - issued_on as integer) as terms_days,
        amount,
        currency
    from renamed
)

select * from final
