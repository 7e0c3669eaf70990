{#-
  The as-of dates a run builds: `--vars '{as_of_date: D}'` for one date, or
  `--vars '{as_of_dates: [D1, D2, ...]}'` for several in one run (a backfill).
  Empty when neither is set. Each date is checked to be YYYY-MM-DD.
-#}
{% macro requested_dates() -%}
    {%- set one, many = var('as_of_date'), var('as_of_dates') -%}
    {%- if not execute -%}{{ return([]) }}{%- endif -%}
    {%- if one is not none and many -%}
        {{ exceptions.raise_compiler_error("pass either var 'as_of_date' or var 'as_of_dates', not both") }}
    {%- endif -%}
    {%- if many and (many is string or many is not iterable) -%}
        {{ exceptions.raise_compiler_error("var 'as_of_dates' must be a list of YYYY-MM-DD dates; got " ~ (many | string)) }}
    {%- endif -%}
    {%- for d in many or [] %}{% do check_date(d, 'as_of_dates') %}{% endfor -%}
    {{ return(many if many else ([one] if one is not none else [])) }}
{%- endmacro %}
