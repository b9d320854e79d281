{#- Fails on every row whose date or time is later than the expression `limit` (for example a var-derived date). -#}
{% test not_after(model, column_name, limit) %}
    select {{ column_name }} as failing_value
    from {{ model }}
    where {{ column_name }} > {{ limit }}
{% endtest %}
