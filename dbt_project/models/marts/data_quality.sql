{{
    config(
        engine='MergeTree()',
        order_by='check_name',
    )
}}

-- One row per data-quality count: what staging dropped as duplicates, and actions outside the known
-- vocabulary (kept, but worth a look). Rows the ingest command rejected are in raw.rejected_rows.
with

raw_purchases as (

    select count() as row_count from {{ source('raw', 'purchases') }}

),

raw_actions as (

    select count() as row_count from {{ source('raw', 'user_actions') }}

),

staged_purchases as (

    select count() as row_count from {{ ref('stg_purchases') }}

),

staged_actions as (

    select count() as row_count from {{ ref('stg_user_actions') }}

),

unknown_actions as (

    select count() as row_count
    from {{ ref('stg_user_actions') }}
    where action not in ('login', 'add_to_cart', 'purchase', 'offer_sent')

),

checks as (

    select 'duplicate_purchases_dropped' as check_name,
           (select row_count from raw_purchases) - (select row_count from staged_purchases) as row_count
    union all
    select 'duplicate_actions_dropped',
           (select row_count from raw_actions) - (select row_count from staged_actions)
    union all
    select 'unknown_action_names_kept', (select row_count from unknown_actions)

)

select check_name, toInt64(row_count) as row_count from checks
