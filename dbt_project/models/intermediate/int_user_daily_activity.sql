{{
    config(
        materialized='incremental',
        incremental_strategy='delete_insert',
        unique_key='user_id, activity_date',
        engine='MergeTree()',
        order_by='(user_id, activity_date)',
    )
}}

-- One row per user and day with any customer action: the counts every feature window is summed from.
-- Incremental runs recompute the last `activity_lookback_days` days for every user, so events that
-- arrive up to that many days late are still counted. Older late events need --full-refresh.
-- Offers sent to the user are not customer actions, so they neither create a row nor count here.
with

events as (

    select * from {{ ref('int_user_events') }}

),

daily as (

    select
        user_id,
        event_date as activity_date,
        countIf(event_type = 'purchase') as count_purchases,
        sumIf(purchase_value, event_type = 'purchase') as purchase_value,
        countIf(event_type = 'purchase' and discount_code is not null) as count_discount_purchases,
        countIf(event_type = 'login') as count_logins,
        countIf(event_type = 'add_to_cart') as count_cart_adds,
        count() as count_events
    from events
    where is_customer_action = 1
    {% if is_incremental() %}
      and event_date >= (select max(activity_date) from {{ this }}) - {{ var('activity_lookback_days') | int }}
    {% endif %}
    group by user_id, event_date

)

select * from daily
