{#-
  dbt's `where` test config, plus one placeholder: `__requested_dates__` becomes the
  as-of dates this run builds (see requested_dates). The feature model's tests use it
  (dbt_project.yml), so a nightly run tests the date it built, not the whole history,
  and a backfill that rebuilds one bad date alone tests only that date. When no date
  is given (a hand-run `dbt test`), the filter is dropped and every row is tested.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__requested_dates__' in where -%}
        {%- set dates = requested_dates() -%}
        {%- set where = where | replace('__requested_dates__', '(' ~ as_of_spine(dates, 'as_of_date') ~ ')') if dates else '' -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
