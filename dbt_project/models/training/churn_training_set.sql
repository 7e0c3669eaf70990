{#-
  Features on each training snapshot date, joined with the label known
  `label_horizon_days` later: did the customer cancel in (D, D + horizon]?
  `batchpred train` passes the snapshot dates, all old enough for the label to be known.
-#}
with features as (
    {{ churn_features(as_of_spine(var('training_dates'), 'training_dates')) }}
),

cancellations as (
    select * from {{ ref('stg_raw__cancellations') }}
),

final as (
    select
        features.*,
        case
            when cancellations.cancelled_on <= features.as_of_date + {{ var('label_horizon_days') | int }}
            then 1 else 0
        end as churned_30d
    from features
    left join cancellations
        on cancellations.customer_id = features.customer_id
)

select * from final
