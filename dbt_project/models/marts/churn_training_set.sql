{{
    config(
        engine='MergeTree()',
        order_by='(as_of_date, user_id)',
    )
}}

-- One row per user and snapshot: features as of the cutoff and whether the user bought nothing in the
-- label window that starts at the cutoff. The latest snapshot is the held-out evaluation split.
-- Earlier snapshots are for training, spaced one training label window apart, so that every
-- training label window ends by the evaluation cutoff.
with

snapshots as (

    select
        {{ evaluation_cutoff_sql() }} as as_of_date,
        'evaluation' as split,
        toUInt32({{ label_window_days() }}) as label_window_days

    union all

    select
        {{ evaluation_cutoff_sql() }} - {{ training_label_window_days() }} * number as as_of_date,
        'train' as split,
        toUInt32({{ training_label_window_days() }}) as label_window_days
    from numbers(1, {{ training_snapshot_count() }})

),

features as (

    {{ user_features_at('snapshots') }}

),

label_window_purchases as (

    select
        activity.user_id as user_id,
        snapshot.as_of_date as as_of_date,
        sum(activity.count_purchases) as count_purchases_in_label_window
    from {{ ref('int_user_daily_activity') }} as activity
    cross join snapshots as snapshot
    where activity.activity_date >= snapshot.as_of_date
      and activity.activity_date < snapshot.as_of_date + snapshot.label_window_days
    group by activity.user_id, snapshot.as_of_date

),

labelled as (

    select
        features.user_id as user_id,
        features.as_of_date as as_of_date,
        features.* except (user_id, as_of_date),
        snapshots.split as split,
        snapshots.label_window_days as label_window_days,
        snapshots.as_of_date + snapshots.label_window_days as label_window_end_date,
        coalesce(label_window_purchases.count_purchases_in_label_window, 0) as count_purchases_in_label_window,
        toUInt8(count_purchases_in_label_window = 0) as is_churned
    from features
    inner join snapshots on features.as_of_date = snapshots.as_of_date
    left join label_window_purchases
        on features.user_id = label_window_purchases.user_id
        and features.as_of_date = label_window_purchases.as_of_date

)

select * from labelled
