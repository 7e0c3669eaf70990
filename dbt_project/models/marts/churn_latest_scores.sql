{#- A view, so it always shows the newest committed partition: no rebuild needed after scoring. -#}
{{ config(materialized='view', tags=['mart', 'churn']) }}

with scores as (
    select * from {{ source('predictions', 'churn_scores') }}
),

latest as (
    select max(as_of_date) as as_of_date from scores
),

customers as (
    select * from {{ ref('stg_raw__customers') }}
),

final as (
    select
        scores.customer_id,
        scores.as_of_date,
        scores.score,
        case
            when scores.score >= 0.5 then 'high'
            when scores.score >= 0.2 then 'medium'
            else 'low'
        end as risk_band,
        customers.plan,
        customers.region,
        customers.channel,
        scores.model_name,
        scores.model_version,
        scores.scored_at
    from scores
    inner join latest
        on latest.as_of_date = scores.as_of_date
    left join customers
        on customers.customer_id = scores.customer_id
)

select * from final
