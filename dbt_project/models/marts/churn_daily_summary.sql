{#-
  Score distribution per as-of date and plan. Incremental: with --vars '{as_of_date: D}'
  only D is rebuilt (with '{as_of_dates: [...]}' only those dates); without either, every
  scored date is.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    tags=['mart', 'churn'],
) }}
{%- set dates = requested_dates() %}

with scores as (
    select * from {{ source('predictions', 'churn_scores') }}
    {%- if dates %}
    where as_of_date in ({{ as_of_spine(dates, 'as_of_date') }})
    {%- endif %}
),

customers as (
    select * from {{ ref('stg_raw__customers') }}
),

final as (
    select
        scores.as_of_date,
        customers.plan,
        cast(count(*) as integer) as customers,
        avg(scores.score) as mean_score,
        percentile_cont(0.5) within group (order by scores.score) as median_score,
        percentile_cont(0.9) within group (order by scores.score) as p90_score,
        cast(sum(case when scores.score >= 0.5 then 1 else 0 end) as integer) as high_risk_customers,
        max(scores.model_version) as model_version
    from scores
    inner join customers
        on customers.customer_id = scores.customer_id
    group by scores.as_of_date, customers.plan
)

select * from final
