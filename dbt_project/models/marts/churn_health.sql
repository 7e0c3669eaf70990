{#- A view over the daily summary and monitoring.daily_health: always current, no rebuild after monitoring. -#}
{{ config(materialized='view', tags=['mart', 'churn']) }}
{{ batchpred_health('churn', ref('churn_daily_summary'), source('monitoring', 'daily_health')) }}
