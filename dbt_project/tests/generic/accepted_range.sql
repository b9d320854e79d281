{#- Fails on every row whose value lies outside [min_value, max_value]; NULLs pass (use not_null for them). -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
    select {{ column_name }} as failing_value
    from {{ model }}
    where {{ column_name }} is not null
      and (
        false
        {% if min_value is not none %} or {{ column_name }} < {{ min_value }} {% endif %}
        {% if max_value is not none %} or {{ column_name }} > {{ max_value }} {% endif %}
        or isNaN(toFloat64({{ column_name }}))
      )
{% endtest %}
