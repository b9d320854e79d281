{#- Date variables are checked before they reach SQL, so a typo fails the run instead of the data. -#}
{% macro validated_date_var(name) -%}
    {%- set value = var(name, '') | string | trim -%}
    {%- if value -%}
        {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', value) -%}
            {{ exceptions.raise_compiler_error("dbt var " ~ name ~ "=" ~ value ~ " is not a date in YYYY-MM-DD form") }}
        {%- endif -%}
        {%- set parts = value.split('-') | map('int') | list -%}
        {%- set days_in_month = [31, 29 if (parts[0] % 4 == 0 and (parts[0] % 100 != 0 or parts[0] % 400 == 0)) else 28,
                                 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] -%}
        {%- if parts[1] < 1 or parts[1] > 12 or parts[2] < 1 or parts[2] > days_in_month[parts[1] - 1] -%}
            {{ exceptions.raise_compiler_error("dbt var " ~ name ~ "=" ~ value ~ " is not a calendar date") }}
        {%- endif -%}
        {#- ClickHouse's Date type holds 1970-01-01 to 2149-06-06 and silently clamps other dates. -#}
        {%- if value < '1970-01-02' or value > '2149-06-06' -%}
            {{ exceptions.raise_compiler_error("dbt var " ~ name ~ "=" ~ value ~ " is outside 1970-01-02 to 2149-06-06") }}
        {%- endif -%}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- SQL expression for the feature date: the var, or the day after the latest customer action
    (1970-01-02 on an empty warehouse, which leaves every mart empty). -#}
{% macro feature_date_sql() -%}
    {%- set value = validated_date_var('feature_date') -%}
    {%- if value -%}
        toDate('{{ value }}')
    {%- else -%}
        ifNull((select max(activity_date) from {{ ref('int_user_daily_activity') }}), toDate('1970-01-01')) + 1
    {%- endif -%}
{%- endmacro %}

{#- SQL expression for the evaluation cutoff: the var, or one label window before the feature date. -#}
{% macro evaluation_cutoff_sql() -%}
    {%- set value = validated_date_var('evaluation_cutoff_date') -%}
    {%- if value -%}
        toDate('{{ value }}')
    {%- else -%}
        ({{ feature_date_sql() }} - {{ label_window_days() }})
    {%- endif -%}
{%- endmacro %}

{% macro label_window_days() -%}
    {%- set days = var('label_window_days') | int -%}
    {%- if days < 1 -%}
        {{ exceptions.raise_compiler_error("dbt var label_window_days must be a positive whole number of days") }}
    {%- endif -%}
    {{ return(days) }}
{%- endmacro %}

{#- Label window of the training snapshots: the var, or the evaluation label window. A shorter one
    leaves room for training snapshots when the evaluation window is long compared with the history. -#}
{% macro training_label_window_days() -%}
    {%- set value = var('training_label_window_days', '') | string | trim -%}
    {%- if not value -%}
        {{ return(label_window_days()) }}
    {%- endif -%}
    {%- if not value.isdigit() or value | int < 1 -%}
        {{ exceptions.raise_compiler_error("dbt var training_label_window_days must be a positive whole number of days") }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}

{% macro training_snapshot_count() -%}
    {%- set count = var('training_snapshot_count') | int -%}
    {%- if count < 1 -%}
        {{ exceptions.raise_compiler_error("dbt var training_snapshot_count must be at least 1, so there are rows to train on") }}
    {%- endif -%}
    {{ return(count) }}
{%- endmacro %}
