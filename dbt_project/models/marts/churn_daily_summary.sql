{#- Incremental: only the dates a run names are rebuilt (and a date with no predictions left is emptied). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    tags=['mart', 'churn'],
    pre_hook="{{ batchpred_clear_requested_dates() }}",
) }}
{{ batchpred_daily_summary('churn', source('predictions', 'churn_scores'), ref('churn_features')) }}
