-- One row per user and day with any event: the counts every feature window is summed from.
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
        countIf(event_type = 'offer_sent') as count_offers_received,
        count() as count_events
    from events
    group by user_id, event_date

)

select * from daily
