{#- Incremental: only the dates a run names are rebuilt (and a date with no predictions left is emptied). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    tags=['mart', 'payment_risk'],
    pre_hook="{{ batchpred_clear_requested_dates() }}",
) }}
{{ batchpred_daily_summary('payment_risk', source('predictions', 'payment_risk_scores'), ref('payment_risk_features')) }}
