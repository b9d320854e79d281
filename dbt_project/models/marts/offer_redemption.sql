{{
    config(
        engine='MergeTree()',
        order_by='discount_code',
    )
}}

-- One row per discount code that was sent or issued to a treated user. A redemption is a purchase
-- by the same user with the same code after the offer was sent and no later than its expiry.
with

offer_sent_actions as (

    select
        user_id,
        discount_code,
        min(event_at) as sent_at
    from {{ ref('stg_user_actions') }}
    where action = 'offer_sent' and discount_code is not null
    group by user_id, discount_code

),

issued_offers as (

    select
        discount_code,
        any(campaign_id) as campaign_id,
        any(user_id) as user_id,
        any(discount_percent) as discount_percent,
        any(tier) as tier,
        any(expires_at) as expires_at
    from {{ source('pipeline', 'discount_offers') }}
    where offer_group = 'treatment'
    group by discount_code

),

offers as (

    select
        coalesce(sent.discount_code, issued.discount_code, '') as discount_code,
        coalesce(sent.user_id, issued.user_id, '') as user_id,
        issued.campaign_id as campaign_id,
        issued.discount_percent as discount_percent,
        issued.tier as tier,
        sent.sent_at as sent_at,
        coalesce(issued.expires_at, sent.sent_at + toIntervalDay({{ var('default_offer_validity_days') | int }})) as expires_at,
        sent.sent_at is not null as is_sent
    from offer_sent_actions as sent
    full outer join issued_offers as issued on sent.discount_code = issued.discount_code
    settings join_use_nulls = 1

),

code_purchases as (

    select
        user_id,
        discount_code,
        event_at as purchased_at,
        purchase_value
    from {{ ref('int_user_events') }}
    where event_type = 'purchase' and discount_code is not null

),

redemptions as (

    select
        offers.discount_code as discount_code,
        offers.user_id as user_id,
        min(code_purchases.purchased_at) as first_redeemed_at,
        count() as count_redeemed_orders,
        sum(code_purchases.purchase_value) as redeemed_revenue
    from offers
    inner join code_purchases
        on offers.discount_code = code_purchases.discount_code
        and offers.user_id = code_purchases.user_id
    where offers.is_sent
      and code_purchases.purchased_at > offers.sent_at
      and code_purchases.purchased_at <= offers.expires_at
    group by offers.discount_code, offers.user_id

),

per_code as (

    select
        offers.discount_code as discount_code,
        any(offers.campaign_id) as campaign_id,
        any(offers.discount_percent) as discount_percent,
        any(offers.tier) as tier,
        min(offers.sent_at) as first_sent_at,
        toUInt64(countIf(offers.is_sent)) as count_offers_sent,
        toUInt64(countIf(redemptions.discount_code != '')) as count_redemptions,
        if(count_offers_sent = 0, null, count_redemptions / count_offers_sent) as redemption_rate,
        if(count_redemptions = 0, null,
           avgIf(dateDiff('day', offers.sent_at, redemptions.first_redeemed_at), redemptions.discount_code != '')) as average_days_to_redeem,
        round(sum(redemptions.redeemed_revenue), 2) as redeemed_revenue
    from offers
    left join redemptions
        on offers.discount_code = redemptions.discount_code
        and offers.user_id = redemptions.user_id
    group by offers.discount_code

)

select * from per_code
