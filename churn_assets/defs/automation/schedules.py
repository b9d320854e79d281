"""Schedules for retraining and scoring, off until someone turns them on in the UI."""

import dagster as dg

from churn_assets.defs.automation.jobs import churn_refresh_job, churn_retrain_job

weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=churn_retrain_job,
    cron_schedule="0 3 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Retrain every Monday at 03:00 UTC; the gate keeps the champion unless the new model beats it.",
)

daily_scoring_schedule = dg.ScheduleDefinition(
    name="daily_scoring",
    job=churn_refresh_job,
    cron_schedule="0 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Rebuild the marts, rescore and refresh offers every day at 04:00 UTC.",
)
