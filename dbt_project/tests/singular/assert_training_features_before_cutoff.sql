-- Proves that no feature reads activity on or after its cutoff. The features of the evaluation
-- snapshot are computed again from activity cut off at that date. Any difference from the
-- training set means a feature looked past its cutoff. A failing row is a user whose recomputed
-- features differ, or who appears on only one side.
{%- set non_features = ['user_id', 'as_of_date', 'split', 'label_window_days', 'label_window_end_date',
                        'count_purchases_in_label_window', 'is_churned'] -%}
{%- set feature_columns = [] -%}
{%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(ref('churn_training_set')) -%}
        {%- if column.name not in non_features -%}
            {%- do feature_columns.append(column.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}

with

evaluation_snapshot as (

    select distinct as_of_date
    from {{ ref('churn_training_set') }}
    where split = 'evaluation'

),

activity_before_cutoff as (

    select *
    from {{ ref('int_user_daily_activity') }}
    where activity_date < (select min(as_of_date) from evaluation_snapshot)

),

recomputed as (

    {{ user_features_at('evaluation_snapshot', 'activity_before_cutoff') }}

),

published as (

    select * from {{ ref('churn_training_set') }} where split = 'evaluation'

)

select
    coalesce(published.user_id, recomputed.user_id) as user_id
from published
full outer join recomputed on published.user_id = recomputed.user_id
where published.user_id = '' or recomputed.user_id = ''
{%- for column in feature_columns %}
   or not (published.{{ column }} = recomputed.{{ column }})
{%- endfor %}
settings join_use_nulls = 0
