-- A failing row is a training row whose recency features could only come from activity on or after
-- its cutoff: every "days since" value must be at least one whole day, and the tenure must not
-- exceed the days between the user's first activity and the cutoff.
with

first_activity as (

    select user_id, min(activity_date) as first_activity_date
    from {{ ref('int_user_daily_activity') }}
    group by user_id

)

select
    training.user_id,
    training.as_of_date,
    training.tenure_days,
    training.days_since_last_purchase
from {{ ref('churn_training_set') }} as training
inner join first_activity on training.user_id = first_activity.user_id
where training.days_since_last_purchase < 1
   or training.days_since_last_login < 1
   or training.days_since_last_cart_add < 1
   or training.tenure_days != dateDiff('day', first_activity.first_activity_date, training.as_of_date)
   or first_activity.first_activity_date >= training.as_of_date
