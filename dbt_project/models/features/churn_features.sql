{#-
  One partition per as-of date: `dbt build --select churn_features --vars '{as_of_date: 2026-01-31}'`
  (re)builds exactly that date and leaves every other date as it was. A backfill passes
  `--vars '{as_of_dates: [2026-01-30, 2026-01-31]}'` to build several dates in one run.
-#}
{#- PostgreSQL: validation and scoring read one date at a time; without this index every
    query of a date scans every date. DuckDB's zone maps do the same job without one. -#}
{{ config(indexes=[{'columns': ['as_of_date']}] if target.type == 'postgres' else []) }}
{%- set dates = requested_dates() -%}
{%- if execute and not dates -%}
    {{ exceptions.raise_compiler_error("churn_features is built per as-of date: pass --vars '{as_of_date: YYYY-MM-DD}'") }}
{%- endif -%}
{{ churn_features(as_of_spine(dates, 'as_of_date')) }}
