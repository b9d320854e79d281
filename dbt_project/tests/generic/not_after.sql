{#- Fails on every row whose date or time is later than the SQL expression `latest`, for example
    a day after now to catch events dated in the future. -#}
{% test not_after(model, column_name, latest) %}
    select {{ column_name }} as failing_value
    from {{ model }}
    where {{ column_name }} > {{ latest }}
{% endtest %}
