{#- Models land in the schema they name (analytics, staging, ...), not "<target>_<schema>",
    because the data contract fixes database names such as analytics.user_features. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
