{#-
  One partition per as-of date: `dbt build --select churn_features --vars '{as_of_date: 2026-01-31}'`
  (re)builds exactly that date and leaves every other date as it was.
-#}
{%- set as_of_date = var('as_of_date') -%}
{%- if execute and as_of_date is none -%}
    {{ exceptions.raise_compiler_error("churn_features is built one date at a time: pass --vars '{as_of_date: YYYY-MM-DD}'") }}
{%- endif -%}
{{ churn_features(as_of_spine([as_of_date], 'as_of_date')) }}
