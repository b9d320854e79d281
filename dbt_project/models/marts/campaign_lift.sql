{{
    config(
        engine='MergeTree()',
        order_by='campaign_id',
    )
}}

-- One row per campaign: the share of treated and of control users who bought during the offer's
-- validity, the difference (the offer's lift) and its 95% confidence interval. Control users
-- received nothing, so their purchases in the same window show what would have happened anyway.
with

decisions as (

    select
        campaign_id,
        user_id,
        offer_group,
        created_at,
        expires_at
    from {{ source('pipeline', 'discount_offers') }} final

),

purchases as (

    select user_id, event_at as purchased_at
    from {{ ref('int_user_events') }}
    where event_type = 'purchase'

),

retained_users as (

    select distinct
        decisions.campaign_id as campaign_id,
        decisions.user_id as user_id
    from decisions
    inner join purchases on decisions.user_id = purchases.user_id
    where purchases.purchased_at >= decisions.created_at
      and purchases.purchased_at <= decisions.expires_at

),

per_group as (

    select
        decisions.campaign_id as campaign_id,
        countIf(decisions.offer_group = 'treatment') as count_treated,
        countIf(decisions.offer_group = 'control') as count_control,
        countIf(decisions.offer_group = 'treatment' and retained_users.user_id != '') as count_treated_retained,
        countIf(decisions.offer_group = 'control' and retained_users.user_id != '') as count_control_retained,
        max(decisions.expires_at) as last_expires_at
    from decisions
    left join retained_users
        on decisions.campaign_id = retained_users.campaign_id
        and decisions.user_id = retained_users.user_id
    group by decisions.campaign_id

),

lift as (

    select
        campaign_id,
        count_treated,
        count_control,
        if(count_treated = 0, null, count_treated_retained / count_treated) as treated_retention_rate,
        if(count_control = 0, null, count_control_retained / count_control) as control_retention_rate,
        treated_retention_rate - control_retention_rate as retention_lift,
        1.96 * sqrt(
            treated_retention_rate * (1 - treated_retention_rate) / count_treated
            + control_retention_rate * (1 - control_retention_rate) / count_control
        ) as lift_margin_95,
        retention_lift - lift_margin_95 as retention_lift_lower_95,
        retention_lift + lift_margin_95 as retention_lift_upper_95,
        last_expires_at
    from per_group

)

select * except (lift_margin_95) from lift
