{#- Fails on every combination of `columns` that appears on more than one row. -#}
{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count() as count_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count_rows > 1
{% endtest %}
