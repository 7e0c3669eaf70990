{#-
  The as-of dates a run builds: `--vars '{as_of_date: D}'` for one date, or
  `--vars '{as_of_dates: [D1, D2, ...]}'` for several in one run (a backfill).
  Empty when neither is set. Each date is checked by as_of_spine before use.
-#}
{% macro requested_dates() -%}
    {%- set one, many = var('as_of_date'), var('as_of_dates') -%}
    {%- if execute and one is not none and many -%}
        {{ exceptions.raise_compiler_error("pass either var 'as_of_date' or var 'as_of_dates', not both") }}
    {%- endif -%}
    {{ return(many if many else ([one] if one is not none else [])) }}
{%- endmacro %}
