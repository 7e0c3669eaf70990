{#-
  Churn features, one row per customer active at the end of each as-of date the run
  builds: `--vars '{as_of_date: 2026-01-31}'` (re)builds exactly that date and leaves
  every other date as it was; `--vars '{as_of_dates: [2026-01-30, 2026-01-31]}'`
  builds several dates in one run (a backfill, a training set).

  Point-in-time correct: a feature for date D reads only events dated on or before D
  (UTC), and no window reaches back more than 90 days (completeness.lookback_days in
  models/churn/model.yaml). A customer is active at D when they signed up on or before
  D and had not cancelled by the end of D.
-#}
{#- PostgreSQL: validation and scoring read one date at a time; without this index every
    query of a date scans every date. DuckDB's zone maps do the same job without one. -#}
{{ config(indexes=[{'columns': ['as_of_date']}] if target.type == 'postgres' else []) }}
{%- set dates = requested_dates() -%}
{%- if execute and not dates -%}
    {{ exceptions.raise_compiler_error("churn_features is built per as-of date: pass --vars '{as_of_date: YYYY-MM-DD}'") }}
{%- endif %}

with spine as (
    {{ as_of_spine(dates, 'as_of_date') }}
),

customers as (
    select * from {{ ref('stg_raw__customers') }}
),

cancellations as (
    select * from {{ ref('stg_raw__cancellations') }}
),

active as (
    select
        spine.as_of_date,
        customers.customer_id,
        customers.signup_date,
        customers.plan,
        customers.region,
        customers.channel
    from spine
    inner join customers
        on customers.signup_date <= spine.as_of_date
    left join cancellations
        on cancellations.customer_id = customers.customer_id
        and cancellations.cancelled_on <= spine.as_of_date
    where cancellations.customer_id is null
),

usage as (
    select
        active.as_of_date,
        active.customer_id,
        sum(case when u.usage_date > active.as_of_date - 7 then u.sessions else 0 end) as sessions_7d,
        sum(case when u.usage_date > active.as_of_date - 30 then u.sessions else 0 end) as sessions_30d,
        sum(case when u.usage_date > active.as_of_date - 30 then u.minutes else 0 end) as minutes_30d,
        count(case when u.usage_date > active.as_of_date - 30 then 1 end) as active_days_30d,
        max(u.usage_date) as last_usage_date
    from active
    inner join {{ ref('stg_raw__usage_daily') }} as u
        on u.customer_id = active.customer_id
        and u.usage_date <= active.as_of_date
        and u.usage_date > active.as_of_date - 90
    group by active.as_of_date, active.customer_id
),

billing as (
    select
        active.as_of_date,
        active.customer_id,
        count(*) as invoices_90d,
        sum(case when i.is_failed and i.invoice_date > active.as_of_date - 30 then 1 else 0 end) as failed_payments_30d,
        sum(case when i.is_failed then 1 else 0 end) as failed_payments_90d
    from active
    inner join {{ ref('stg_raw__invoices') }} as i
        on i.customer_id = active.customer_id
        and i.invoice_date <= active.as_of_date
        and i.invoice_date > active.as_of_date - 90
    group by active.as_of_date, active.customer_id
),

tickets as (
    select
        active.as_of_date,
        active.customer_id,
        sum(case when t.opened_on > active.as_of_date - 30 then 1 else 0 end) as tickets_30d,
        count(*) as tickets_90d,
        sum(case when t.category = 'billing' then 1 else 0 end) as billing_tickets_90d
    from active
    inner join {{ ref('stg_raw__support_tickets') }} as t
        on t.customer_id = active.customer_id
        and t.opened_on <= active.as_of_date
        and t.opened_on > active.as_of_date - 90
    group by active.as_of_date, active.customer_id
),

final as (
    select
        active.customer_id,
        active.as_of_date,
        active.plan,
        active.region,
        active.channel,
        cast(active.as_of_date - active.signup_date as integer) as tenure_days,
        cast(coalesce(usage.sessions_7d, 0) as integer) as sessions_7d,
        cast(coalesce(usage.sessions_30d, 0) as integer) as sessions_30d,
        -- Rounded so the result does not depend on the order the database adds floats in.
        cast(round(cast(coalesce(usage.minutes_30d, 0) as numeric), 2) as double precision) as minutes_30d,
        cast(coalesce(usage.active_days_30d, 0) as integer) as active_days_30d,
        -- Recent week against the 30-day rate; null when there was no usage to compare.
        cast(usage.sessions_7d as double precision) * 30.0 / 7.0
            / nullif(usage.sessions_30d, 0) as sessions_trend,
        -- Null when the customer has not used the product in 90 days.
        cast(active.as_of_date - usage.last_usage_date as integer) as days_since_last_use,
        cast(coalesce(billing.invoices_90d, 0) as integer) as invoices_90d,
        cast(coalesce(billing.failed_payments_30d, 0) as integer) as failed_payments_30d,
        cast(coalesce(billing.failed_payments_90d, 0) as integer) as failed_payments_90d,
        cast(coalesce(tickets.tickets_30d, 0) as integer) as tickets_30d,
        cast(coalesce(tickets.tickets_90d, 0) as integer) as tickets_90d,
        cast(coalesce(tickets.billing_tickets_90d, 0) as integer) as billing_tickets_90d
    from active
    left join usage
        on usage.customer_id = active.customer_id and usage.as_of_date = active.as_of_date
    left join billing
        on billing.customer_id = active.customer_id and billing.as_of_date = active.as_of_date
    left join tickets
        on tickets.customer_id = active.customer_id and tickets.as_of_date = active.as_of_date
)

select * from final
