-- A failing row is a user with activity before the feature date but no row in user_features,
-- or a user_features row for a user with no such activity.
with

active_users as (

    select distinct user_id
    from {{ ref('int_user_daily_activity') }}
    where activity_date < (select any(feature_date) from {{ ref('user_features') }})

),

feature_users as (

    select user_id from {{ ref('user_features') }}

)

select user_id, 'missing from user_features' as problem
from active_users
where user_id not in (select user_id from feature_users)

union all

select user_id, 'no activity before the feature date' as problem
from feature_users
where user_id not in (select user_id from active_users)
