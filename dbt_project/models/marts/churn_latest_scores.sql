{#- A view, so it always shows the newest committed partition: no rebuild needed after scoring. -#}
{{ config(materialized='view', tags=['mart', 'churn']) }}
{{ batchpred_latest_scores('churn', source('predictions', 'churn_scores'), ref('churn_features'), source('predictions', 'churn_reasons')) }}
