{#-
  Fails with one row per value that is NaN or infinite. Raw numeric columns carry it,
  so a bad value is reported at the raw table and column it arrived in, before any
  feature is computed from it.
-#}
{% test is_a_number(model, column_name) %}
select {{ column_name }}
from {{ model }}
where cast({{ column_name }} as double precision) in (
    cast('NaN' as double precision),
    cast('Infinity' as double precision),
    cast('-Infinity' as double precision)
)
{% endtest %}
