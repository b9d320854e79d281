-- One row per event of any kind: purchases from raw.purchases plus every user action.
-- is_customer_action is 0 for offer_sent events, which the shop (this pipeline included) sends to
-- the customer: they must not count as the customer being active.
-- Purchases recorded only as user actions count as purchases too, so a shop that records the same
-- purchase in both places should send it to only one of them.
with

purchases as (

    select * from {{ ref('stg_purchases') }}

),

actions as (

    select * from {{ ref('stg_user_actions') }}

),

purchase_events as (

    select
        purchase_id as event_id,
        user_id,
        'purchase' as event_type,
        purchased_at as event_at,
        purchase_date as event_date,
        purchase_value as purchase_value,
        discount_code,
        toUInt8(1) as is_customer_action
    from purchases

),

action_events as (

    select
        event_id,
        user_id,
        action as event_type,
        event_at,
        event_date,
        if(action = 'purchase', coalesce(value, 0), 0) as purchase_value,
        discount_code,
        toUInt8(action != 'offer_sent') as is_customer_action
    from actions

),

unioned as (

    select * from purchase_events
    union all
    select * from action_events

)

select * from unioned
