{#-
  Payment-risk features, one row per invoice open at the end of each as-of date D
  (`--vars '{as_of_date: D}'`, or `{as_of_dates: [...]}` for a backfill), one partition
  per date like churn_features.

  Open at D: issued on or before D, no successful payment attempted on or before D, and
  not yet written off (an unpaid invoice is written off write_off_days after its due
  date). Point-in-time correct: a feature for D reads only events dated on or before D
  (attempts by their UTC date), and none looks back more than lookback_days days; an
  open invoice is at most 30 + write_off_days days old, well inside that window.
-#}
{#- PostgreSQL: validation and scoring read one date at a time (see churn_features). -#}
{{ config(indexes=[{'columns': ['as_of_date']}] if target.type == 'postgres' else []) }}
{%- set dates = requested_dates() -%}
{%- if execute and not dates -%}
    {{ exceptions.raise_compiler_error("payment_risk_features is built per as-of date: pass --vars '{as_of_date: YYYY-MM-DD}'") }}
{%- endif -%}
{%- set lookback_days = 90 -%}
{%- set write_off_days = 30 %}

with spine as (
    {{ as_of_spine(dates, 'as_of_date') }}
),

invoices as (
    select * from {{ ref('stg_raw__ar_invoices') }}
),

attempts as (
    select * from {{ ref('stg_raw__ar_payment_attempts') }}
),

customers as (
    select * from {{ ref('stg_raw__customers') }}
),

-- Every invoice issued on or before D inside the window and not yet written off,
-- with what its own attempts showed by the end of D.
issued as (
    select
        spine.as_of_date,
        invoices.invoice_number,
        invoices.customer_id,
        invoices.issued_on,
        invoices.due_on,
        invoices.terms_days,
        invoices.amount,
        sum(case when attempts.outcome = 'paid' then 1 else 0 end) as paid_attempts,
        sum(case when attempts.outcome = 'failed' then 1 else 0 end) as failed_attempts,
        max(attempts.attempted_on) as last_attempted_on
    from spine
    inner join invoices
        on invoices.issued_on <= spine.as_of_date
        and invoices.issued_on > spine.as_of_date - {{ lookback_days }}
        and invoices.due_on > spine.as_of_date - {{ write_off_days }}
    left join attempts
        on attempts.invoice_number = invoices.invoice_number
        and attempts.attempted_on <= spine.as_of_date
        and attempts.attempted_on > spine.as_of_date - {{ lookback_days }}
    group by
        spine.as_of_date,
        invoices.invoice_number,
        invoices.customer_id,
        invoices.issued_on,
        invoices.due_on,
        invoices.terms_days,
        invoices.amount
),

open_invoices as (
    select * from issued
    where paid_attempts = 0
),

-- The customer's payment history over the last lookback_days days, all invoices.
customer_history as (
    select
        owners.as_of_date,
        owners.customer_id,
        sum(case when attempts.outcome = 'failed' then 1 else 0 end) as failed_attempts_90d,
        sum(case when attempts.outcome = 'paid' then 1 else 0 end) as paid_invoices_90d
    from (select distinct as_of_date, customer_id from open_invoices) as owners
    inner join invoices
        on invoices.customer_id = owners.customer_id
    inner join attempts
        on attempts.invoice_number = invoices.invoice_number
        and attempts.attempted_on <= owners.as_of_date
        and attempts.attempted_on > owners.as_of_date - {{ lookback_days }}
    group by owners.as_of_date, owners.customer_id
),

final as (
    select
        open_invoices.invoice_number,
        open_invoices.as_of_date,
        open_invoices.customer_id,
        customers.plan,
        'net' || cast(open_invoices.terms_days as varchar) as terms,
        open_invoices.amount,
        cast(open_invoices.as_of_date - open_invoices.issued_on as integer) as days_since_issue,
        -- Negative once the invoice is overdue.
        cast(open_invoices.due_on - open_invoices.as_of_date as integer) as days_until_due,
        cast(open_invoices.failed_attempts as integer) as failed_attempts,
        -- Null before the first attempt.
        cast(open_invoices.as_of_date - open_invoices.last_attempted_on as integer) as days_since_last_attempt,
        cast(coalesce(customer_history.failed_attempts_90d, 0) as integer) as customer_failed_attempts_90d,
        cast(coalesce(customer_history.paid_invoices_90d, 0) as integer) as customer_paid_invoices_90d,
        cast(open_invoices.as_of_date - customers.signup_date as integer) as tenure_days
    from open_invoices
    left join customers
        on customers.customer_id = open_invoices.customer_id
    left join customer_history
        on customer_history.customer_id = open_invoices.customer_id
        and customer_history.as_of_date = open_invoices.as_of_date
)

select * from final
