-- One row per user action, with action names normalised to lower_snake_case.
with

source as (

    select * from {{ source('raw', 'user_actions') }}

),

deduplicated as (

    select *
    from source
    order by loaded_at
    limit 1 by event_id

),

normalised as (

    select
        *,
        replaceRegexpAll(lower(trim(action)), '[\\s\\-]+', '_') as normalised_action
    from deduplicated

),

renamed as (

    select
        -- ids
        event_id,
        user_id,

        -- action: "Add To Cart", "add-to-cart" and "addtocart" all become add_to_cart
        multiIf(
            normalised_action in ('addtocart', 'cart', 'add_cart'), 'add_to_cart',
            normalised_action in ('signin', 'sign_in', 'log_in'), 'login',
            normalised_action in ('order', 'buy', 'checkout'), 'purchase',
            normalised_action
        ) as action,

        -- timestamps
        event_at,
        toDate(event_at) as event_date,

        -- numerics and text
        toFloat64OrNull(toString(value)) as value,
        nullIf(trim(discount_code), '') as discount_code

    from normalised

)

select * from renamed
