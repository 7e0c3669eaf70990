{#- A view over the daily summary and monitoring.daily_health: always current, no rebuild after monitoring. -#}
{{ config(materialized='view', tags=['mart', 'payment_risk']) }}
{{ batchpred_health('payment_risk', ref('payment_risk_daily_summary'), source('monitoring', 'daily_health')) }}
