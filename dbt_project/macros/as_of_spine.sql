{#-
  A one-column relation (as_of_date) holding the given dates, rendered as
  a union of literals. Each date is checked to be YYYY-MM-DD first, so nothing
  else can reach the SQL.
-#}
{% macro check_date(value, name) -%}
    {#- At parse time vars may be unset; only a real run must have them. -#}
    {%- if not execute -%}{{ return('1970-01-01') }}{%- endif -%}
    {%- if value is none or not modules.re.match('^\d{4}-\d{2}-\d{2}$', value | string) -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a date written YYYY-MM-DD; got " ~ (value | string)) }}
    {%- endif -%}
    {{ return(value | string) }}
{%- endmacro %}

{% macro as_of_spine(dates, name) -%}
    {%- if not execute -%}{%- set dates = ['1970-01-01'] -%}{%- endif -%}
    {%- if dates is string or dates | length == 0 -%}
        {{ exceptions.raise_compiler_error("var '" ~ name ~ "' must be a non-empty list of YYYY-MM-DD dates") }}
    {%- endif -%}
    {%- for d in dates %}
    select cast('{{ check_date(d, name) }}' as date) as as_of_date
    {%- if not loop.last %} union all{% endif -%}
    {% endfor %}
{%- endmacro %}
