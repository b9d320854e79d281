{{
    config(
        engine='MergeTree()',
        order_by='user_id',
    )
}}

-- One row per user with any event before the feature date.
with

snapshots as (

    select {{ feature_date_sql() }} as as_of_date

),

features as (

    {{ user_features_at('snapshots') }}

),

final as (

    select
        * except (as_of_date),
        as_of_date as feature_date
    from features

)

select * from final
