{#-
    Features of every user as of each snapshot date in `snapshots` (a CTE or relation with an
    `as_of_date` column), from daily activity in `activity` (int_user_daily_activity by default). Only activity strictly before as_of_date is read, so a snapshot never
    sees its own label window. Users without a purchase, login or cart event get the user's tenure
    as "days since" and zero counts, never NULL.
-#}
{% macro user_features_at(snapshots, activity=none) %}
    select
        activity.user_id as user_id,
        snapshot.as_of_date as as_of_date,

        -- tenure and recency, in whole days before as_of_date
        dateDiff('day', min(activity.activity_date), snapshot.as_of_date) as tenure_days,
        if(count_purchases_total > 0,
           dateDiff('day', maxIf(activity.activity_date, activity.count_purchases > 0), snapshot.as_of_date),
           tenure_days) as days_since_last_purchase,
        if(sum(activity.count_logins) > 0,
           dateDiff('day', maxIf(activity.activity_date, activity.count_logins > 0), snapshot.as_of_date),
           tenure_days) as days_since_last_login,
        if(sum(activity.count_cart_adds) > 0,
           dateDiff('day', maxIf(activity.activity_date, activity.count_cart_adds > 0), snapshot.as_of_date),
           tenure_days) as days_since_last_cart_add,
        if(count_purchases_total > 0,
           dateDiff('day', minIf(activity.activity_date, activity.count_purchases > 0), snapshot.as_of_date),
           0) as days_since_first_purchase,
        toUInt8(count_purchases_total > 0) as has_purchased,

        -- frequency
        toUInt64(sum(activity.count_purchases)) as count_purchases_total,
        toUInt64(countIf(activity.count_purchases > 0)) as count_purchase_days_total,
        {% for days in [7, 30, 90] %}
        toUInt64(sumIf(activity.count_purchases, activity.activity_date >= snapshot.as_of_date - {{ days }})) as count_purchases_{{ days }}d,
        {% endfor %}
        toUInt64(sumIf(activity.count_logins, activity.activity_date >= snapshot.as_of_date - 30)) as count_logins_30d,
        toUInt64(sumIf(activity.count_cart_adds, activity.activity_date >= snapshot.as_of_date - 30)) as count_cart_adds_30d,
        toUInt64(countIf(activity.activity_date >= snapshot.as_of_date - 90)) as count_active_days_90d,

        -- monetary value
        round(sum(activity.purchase_value), 2) as purchase_value_total,
        {% for days in [7, 30, 90] %}
        round(sumIf(activity.purchase_value, activity.activity_date >= snapshot.as_of_date - {{ days }}), 2) as purchase_value_{{ days }}d,
        {% endfor %}
        round(if(count_purchases_total > 0, purchase_value_total / count_purchases_total, 0), 2) as average_purchase_value,

        -- trends: the last 30 days against the 30 days before them
        toInt64(count_purchases_30d)
            - toInt64(sumIf(activity.count_purchases, activity.activity_date >= snapshot.as_of_date - 60
                                                    and activity.activity_date < snapshot.as_of_date - 30)) as purchase_trend_30d,
        toInt64(count_logins_30d)
            - toInt64(sumIf(activity.count_logins, activity.activity_date >= snapshot.as_of_date - 60
                                                 and activity.activity_date < snapshot.as_of_date - 30)) as login_trend_30d,

        -- cart abandonment: share of cart days in the last 30 days without a purchase that day
        if(countIf(activity.count_cart_adds > 0 and activity.activity_date >= snapshot.as_of_date - 30) > 0,
           countIf(activity.count_cart_adds > 0 and activity.count_purchases = 0 and activity.activity_date >= snapshot.as_of_date - 30)
             / countIf(activity.count_cart_adds > 0 and activity.activity_date >= snapshot.as_of_date - 30),
           0) as cart_abandonment_rate_30d,

        -- discounts
        toUInt64(sum(activity.count_discount_purchases)) as count_discount_purchases_total,
        if(count_purchases_total > 0, count_discount_purchases_total / count_purchases_total, 0) as discount_purchase_share

    from {{ activity if activity is not none else ref('int_user_daily_activity') }} as activity
    cross join {{ snapshots }} as snapshot
    where activity.activity_date < snapshot.as_of_date
    group by activity.user_id, snapshot.as_of_date
{% endmacro %}
