{#-
  Custom schemas (analytics, marts) as they are, not prefixed with the target schema.
  A dry run passes var 'batchpred_scratch_schema': every model is then built in that
  schema instead (batchpred drops it at the end), so analytics and marts stay as they were.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set scratch = var('batchpred_scratch_schema', none) -%}
    {%- if scratch -%}
        {%- if not modules.re.match('^batchpred_dry_run_[a-z0-9]+$', scratch) -%}
            {{ exceptions.raise_compiler_error("var 'batchpred_scratch_schema' must look like batchpred_dry_run_<id>; got " ~ scratch) }}
        {%- endif -%}
        {{ scratch }}
    {%- else -%}
        {{ (custom_schema_name or target.schema) | trim }}
    {%- endif -%}
{%- endmacro %}
