{#-
  The payment-risk label, one row per invoice per as-of date D that has features: did
  a payment attempt on it fail in (D, D + label_horizon_days]? (By the attempt's UTC
  date.) Training joins it to the features of the snapshot dates; monitoring joins it
  to the predictions of D once D + the horizon is complete. Built per as-of date.
-#}
{{ config(indexes=[{'columns': ['as_of_date']}] if target.type == 'postgres' else []) }}
{%- set dates = requested_dates() -%}
{%- if execute and not dates -%}
    {{ exceptions.raise_compiler_error("payment_risk_labels is built per as-of date: pass --vars '{as_of_date: YYYY-MM-DD}'") }}
{%- endif %}

with features as (
    select invoice_number, as_of_date
    from {{ ref('payment_risk_features') }}
    where as_of_date in ({{ as_of_spine(dates, 'as_of_date') }})
),

attempts as (
    select * from {{ ref('stg_raw__ar_payment_attempts') }}
),

failures as (
    select
        features.invoice_number,
        features.as_of_date,
        count(*) as failed_attempts
    from features
    inner join attempts
        on attempts.invoice_number = features.invoice_number
        and attempts.outcome = 'failed'
        and attempts.attempted_on > features.as_of_date
        and attempts.attempted_on <= features.as_of_date + {{ var('label_horizon_days') | int }}
    group by features.invoice_number, features.as_of_date
),

final as (
    select
        features.invoice_number,
        features.as_of_date,
        cast(case when failures.invoice_number is not null then 1 else 0 end as integer) as failed_7d
    from features
    left join failures
        on failures.invoice_number = features.invoice_number
        and failures.as_of_date = features.as_of_date
)

select * from final
