{#-
  The churn label, one row per customer per as-of date D that has features: did the
  customer cancel in (D, D + label_horizon_days]? Training joins it to the features of
  the snapshot dates; monitoring joins it to the predictions of D, once D + the horizon
  is complete. One definition for both. Built per as-of date like the features.
-#}
{{ config(indexes=[{'columns': ['as_of_date']}] if target.type == 'postgres' else []) }}
{%- set dates = requested_dates() -%}
{%- if execute and not dates -%}
    {{ exceptions.raise_compiler_error("churn_labels is built per as-of date: pass --vars '{as_of_date: YYYY-MM-DD}'") }}
{%- endif %}

with features as (
    select customer_id, as_of_date
    from {{ ref('churn_features') }}
    where as_of_date in ({{ as_of_spine(dates, 'as_of_date') }})
),

cancellations as (
    select * from {{ ref('stg_raw__cancellations') }}
),

final as (
    select
        features.customer_id,
        features.as_of_date,
        cast(case
            when cancellations.cancelled_on <= features.as_of_date + {{ var('label_horizon_days') | int }} then 1
            else 0
        end as integer) as churned_30d
    from features
    left join cancellations
        on cancellations.customer_id = features.customer_id
)

select * from final
