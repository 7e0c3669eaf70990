{#- A view, so it always shows the newest committed partition: no rebuild needed after scoring. -#}
{{ config(materialized='view', tags=['mart', 'payment_risk']) }}
{{ batchpred_latest_scores('payment_risk', source('predictions', 'payment_risk_scores'), ref('payment_risk_features'), source('predictions', 'payment_risk_reasons')) }}
