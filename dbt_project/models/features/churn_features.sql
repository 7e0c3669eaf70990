{#-
  One partition per as-of date: `dbt build --select churn_features --vars '{as_of_date: 2026-01-31}'`
  (re)builds exactly that date and leaves every other date as it was.
-#}
{#- PostgreSQL: validation and scoring read one date at a time; without this index every
    query of a date scans every date. DuckDB's zone maps do the same job without one. -#}
{{ config(indexes=[{'columns': ['as_of_date']}] if target.type == 'postgres' else []) }}
{%- set as_of_date = var('as_of_date') -%}
{%- if execute and as_of_date is none -%}
    {{ exceptions.raise_compiler_error("churn_features is built one date at a time: pass --vars '{as_of_date: YYYY-MM-DD}'") }}
{%- endif -%}
{{ churn_features(as_of_spine([as_of_date], 'as_of_date')) }}
