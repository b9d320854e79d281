-- One row per purchase. The raw table merges duplicates only eventually, so deduplicate here.
with

source as (

    select * from {{ source('raw', 'purchases') }}

),

deduplicated as (

    select *
    from source
    order by loaded_at
    limit 1 by purchase_id

),

renamed as (

    select
        -- ids
        purchase_id,
        user_id,

        -- timestamps
        purchased_at,
        toDate(purchased_at) as purchase_date,

        -- numerics
        toFloat64(purchase_value) as purchase_value,
        quantity,

        -- text
        nullIf(trim(discount_code), '') as discount_code

    from deduplicated

)

select * from renamed
