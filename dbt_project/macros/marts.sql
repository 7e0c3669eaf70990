{#-
  The marts every model gets, generic over its spec. batchpred passes the spec's
  entity key, segment, risk bands and action threshold as var 'batchpred_spec' when it
  builds them (see pipelines/transform.py), so models/<name>/model.yaml stays the one
  place they are set. A model's mart files are one line each:

    {{ batchpred_latest_scores('churn', source('predictions', 'churn_scores'), ref('churn_features')) }}
-#}

{% macro batchpred_spec(model) -%}
    {%- set spec = var('batchpred_spec', none) -%}
    {%- if not execute -%}
        {#- Parsing: a stand-in, so the models parse without batchpred's vars. -#}
        {{ return({'name': model, 'key': ['as_of_date'], 'segment': 'as_of_date', 'risk_bands': [['high', 0.5]], 'action_threshold': 0.5}) }}
    {%- endif -%}
    {%- if spec is none or spec['name'] != model -%}
        {{ exceptions.raise_compiler_error("the marts of " ~ model ~ " read the model's spec from var 'batchpred_spec', which batchpred passes; build them with batchpred (batchpred score / backfill), not dbt alone") }}
    {%- endif -%}
    {{ return(spec) }}
{%- endmacro %}

{#- The band a score falls in: the first (highest) threshold it reaches, else 'low'. -#}
{% macro batchpred_risk_band(score, bands) -%}
    case
    {%- for band in bands %}
        when {{ score }} >= {{ band[1] | float }} then '{{ band[0] }}'
    {%- endfor %}
        when {{ score }} is not null then 'low'
    end
{%- endmacro %}

{#- Deletes the dates a run builds before it builds them, so a date whose predictions
    were removed (batchpred unpublish) loses its summary rows too. -#}
{% macro batchpred_clear_requested_dates() -%}
    {%- if execute -%}
        {%- set dates = requested_dates() -%}
        {%- set existing = adapter.get_relation(database=this.database, schema=this.schema, identifier=this.identifier) -%}
        {%- if dates and existing is not none -%}
            delete from {{ this }} where as_of_date in ({{ as_of_spine(dates, 'as_of_date') }})
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro batchpred_key_join(left, right, key) -%}
    {%- for column in key %}{{ left }}.{{ adapter.quote(column) }} = {{ right }}.{{ adapter.quote(column) }}{% if not loop.last %} and {% endif %}{% endfor -%}
{%- endmacro %}

{#-
  One row per entity scored on the latest as-of date: its score and risk band, its
  segment as of that date (from the features), its score on the previous scored date
  and whether it newly reached the action threshold, how fresh the date is, and (given
  the model's reasons table) its top reason in words: "failed_payments_30d = 3, raises risk".
-#}
{% macro batchpred_reason_text(feature, value, label, contribution) -%}
    {{ feature }} || ' = ' || coalesce(
        {{ label }},
        case
            when {{ value }} is null then 'missing'
            when {{ value }} = round({{ value }}) then cast(cast({{ value }} as bigint) as varchar)
            else cast(round(cast({{ value }} as numeric), 2) as varchar)
        end
    ) || case when {{ contribution }} > 0 then ', raises risk' else ', lowers risk' end
{%- endmacro %}

{% macro batchpred_latest_scores(model, scores, features, reasons=none) -%}
{%- set spec = batchpred_spec(model) -%}
{#- A model with `reasons: {method: off}` has no reasons table: the column is then left out. -#}
{%- if reasons is not none and execute and load_relation(reasons) is none -%}{%- set reasons = none -%}{%- endif -%}
{%- set key = spec['key'] -%}
{%- set segment = adapter.quote(spec['segment']) -%}
{%- set threshold = spec['action_threshold'] | float %}
with scores as (
    select * from {{ scores }}
),

latest as (
    select max(as_of_date) as as_of_date from scores
),

previous as (
    select max(scores.as_of_date) as as_of_date
    from scores
    inner join latest on scores.as_of_date < latest.as_of_date
),

current_scores as (
    select scores.* from scores inner join latest on scores.as_of_date = latest.as_of_date
),

previous_scores as (
    select scores.* from scores inner join previous on scores.as_of_date = previous.as_of_date
),

segments as (
    select {% for column in key %}features.{{ adapter.quote(column) }}, {% endfor %}features.{{ segment }}
    from {{ features }} as features
    inner join latest on features.as_of_date = latest.as_of_date
),
{%- if reasons is not none %}

top_reasons as (
    select {% for column in key %}r.{{ adapter.quote(column) }}, {% endfor %}
        {{ batchpred_reason_text('r.feature', 'r.value', 'r.value_label', 'r.contribution') }} as top_reason,
        r.reason_method
    from {{ reasons }} as r
    inner join latest on r.as_of_date = latest.as_of_date
    where r.rank = 1
),
{%- endif %}

final as (
    select
        {%- for column in key %}
        current_scores.{{ adapter.quote(column) }},
        {%- endfor %}
        current_scores.as_of_date,
        current_scores.score,
        {{ batchpred_risk_band('current_scores.score', spec['risk_bands']) }} as risk_band,
        segments.{{ segment }},
        previous_scores.as_of_date as previous_as_of_date,
        previous_scores.score as previous_score,
        current_scores.score - previous_scores.score as score_change,
        {{ batchpred_risk_band('previous_scores.score', spec['risk_bands']) }} as previous_risk_band,
        -- At or above the action threshold now, and not on the previous scored date
        -- (an entity that was not scored then counts as newly high risk).
        current_scores.score >= {{ threshold }}
            and coalesce(previous_scores.score < {{ threshold }}, true) as newly_high_risk,
        current_scores.model_name,
        current_scores.model_version,
        current_scores.scored_at,
        -- Freshness: how long ago the date on show was published, whatever the reader's time zone.
        cast(extract(epoch from (current_timestamp - current_scores.scored_at)) / 3600.0 as double precision)
            as hours_since_scored
        {%- if reasons is not none %},
        top_reasons.top_reason,
        top_reasons.reason_method
        {%- endif %}
    from current_scores
    left join previous_scores
        on {{ batchpred_key_join('previous_scores', 'current_scores', key) }}
    left join segments
        on {{ batchpred_key_join('segments', 'current_scores', key) }}
    {%- if reasons is not none %}
    left join top_reasons
        on {{ batchpred_key_join('top_reasons', 'current_scores', key) }}
    {%- endif %}
)

select * from final
{%- endmacro %}

{#-
  One row per as-of date per segment value (the segment as of that date), plus one row
  per date for all segments together, whose segment column reads '(all)': how many
  entities were scored, how their scores spread, how many reached the action
  threshold, and how many fell in each risk band.
-#}
{% macro batchpred_daily_summary(model, scores, features) -%}
{%- set spec = batchpred_spec(model) -%}
{%- set key = spec['key'] -%}
{%- set segment = adapter.quote(spec['segment']) -%}
{%- set threshold = spec['action_threshold'] | float -%}
{%- set dates = requested_dates() %}
with scores as (
    select * from {{ scores }}
    {%- if dates %}
    where as_of_date in ({{ as_of_spine(dates, 'as_of_date') }})
    {%- endif %}
),

segments as (
    select {% for column in key %}{{ adapter.quote(column) }}, {% endfor %}as_of_date, {{ segment }}
    from {{ features }}
    {%- if dates %}
    where as_of_date in ({{ as_of_spine(dates, 'as_of_date') }})
    {%- endif %}
),

banded as (
    select
        scores.as_of_date,
        segments.{{ segment }},
        scores.score,
        scores.model_version,
        {{ batchpred_risk_band('scores.score', spec['risk_bands']) }} as risk_band
    from scores
    left join segments
        on segments.as_of_date = scores.as_of_date and {{ batchpred_key_join('segments', 'scores', key) }}
),

final as (
    select
        as_of_date,
        case when grouping({{ segment }}) = 1 then '(all)' else {{ segment }} end as {{ segment }},
        cast(count(*) as integer) as entities,
        avg(score) as mean_score,
        percentile_cont(0.5) within group (order by score) as median_score,
        percentile_cont(0.9) within group (order by score) as p90_score,
        cast(sum(case when score >= {{ threshold }} then 1 else 0 end) as integer) as high_risk,
        {%- for band in spec['risk_bands'] %}
        cast(sum(case when risk_band = '{{ band[0] }}' then 1 else 0 end) as integer) as {{ adapter.quote('entities_' ~ band[0]) }},
        {%- endfor %}
        cast(sum(case when risk_band = 'low' then 1 else 0 end) as integer) as entities_low,
        max(model_version) as model_version
    from banded
    group by grouping sets ((as_of_date, {{ segment }}), (as_of_date))
)

select * from final
{%- endmacro %}

{#-
  One row per as-of date: the day's scores (from the daily summary's all-segments row)
  beside the health of the version that scored them (monitoring.daily_health): drift
  status, the most drifted feature, estimated AUC with its band, realized AUC once
  labels are in, and how many alerts fired. "Model health over time" without a window
  function. A view, so it always reads the latest health.
-#}
{% macro batchpred_health(model, daily_summary, daily_health) -%}
{%- set spec = batchpred_spec(model) -%}
{%- set segment = adapter.quote(spec['segment']) %}
with summary as (
    select * from {{ daily_summary }} where {{ segment }} = '(all)'
),

health as (
    select * from {{ daily_health }} where model_name = '{{ model }}'
),

final as (
    select
        summary.as_of_date,
        summary.model_version,
        summary.entities,
        summary.mean_score,
        summary.high_risk,
        health.status as health_status,
        health.drift_status,
        health.features_alert,
        health.worst_feature,
        health.worst_psi,
        health.expected_auc,
        health.expected_auc_lower,
        health.expected_auc_upper,
        health.realized_auc,
        health.labels_due,
        health.alerts,
        health.message
    from summary
    left join health
        on health.as_of_date = summary.as_of_date and health.model_version = summary.model_version
)

select * from final
{%- endmacro %}
