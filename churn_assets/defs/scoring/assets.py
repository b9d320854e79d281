"""Score every user with the champion model into analytics.churn_scores."""

import time

import dagster as dg

from churn_assets.defs.automation.conditions import after_upstream_changes
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.retries import retried_on_passing_failures
from churn_assets.defs.scoring.methods import choose_method
from churn_assets.defs.scoring.plan import ScoringError, ScoringPlan, iter_feature_chunks, prepare_run, publish, write_scores
from churn_assets.training.evaluation import histogram_markdown


class ScoringConfig(dg.Config):
    """How many users to read and score at a time; memory grows with this, not with the user count."""

    chunk_rows: int = 200_000


def score_in_process(client, plan: ScoringPlan, predictor, chunk_rows: int, log) -> None:
    for user_ids, features in iter_feature_chunks(client, plan, chunk_rows):
        write_scores(client, plan, user_ids, predictor.predict(features))
        log(f"Scored {plan.written_rows}/{plan.user_count} users")


def stage_for_batch(client, plan: ScoringPlan, batch, chunk_rows: int, log) -> None:
    for user_ids, features in iter_feature_chunks(client, plan, chunk_rows):
        batch.stage_chunk(features, user_ids)
        log(f"Staged {batch.staged_rows}/{plan.user_count} users for batch prediction")


def score_with_batch_job(warehouse: WarehouseResource, plan: ScoringPlan, batch, chunk_rows: int) -> None:
    # The warehouse stays closed while Vertex AI runs the job, so sensors and other runs can use it.
    output_directory = batch.run()
    with warehouse.open() as client:
        for user_ids, probabilities in batch.iter_prediction_chunks(output_directory, chunk_rows):
            write_scores(client, plan, user_ids, probabilities)
        publish(client, plan)


@dg.asset(
    deps=["deployed_model", "user_features"],
    group_name="scoring",
    kinds={"tensorflow", "clickhouse"},
    description="One row per user and scoring run: the champion model's churn probability.",
    automation_condition=after_upstream_changes(),
)
@retried_on_passing_failures
def churn_scores(context: dg.AssetExecutionContext, config: ScoringConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    started = time.monotonic()
    log = context.log.info

    try:
        with warehouse.open() as client:
            plan = prepare_run(client, context.run_id, log)
            if plan is None:
                return dg.MaterializeResult(metadata={"scoring_run_id": context.run_id, "already_published": True})
            method = choose_method(plan.champion, plan.user_count, plan.scoring_run_id, log)
            log(f"Scoring {plan.user_count} users with {plan.champion.model_version} ({method.name})")
            if method.batch is None:
                score_in_process(client, plan, method.predictor, config.chunk_rows, log)
                publish(client, plan)
            else:
                stage_for_batch(client, plan, method.batch, config.chunk_rows, log)
        if method.batch is not None:
            score_with_batch_job(warehouse, plan, method.batch, config.chunk_rows)
    except ScoringError as error:
        raise dg.Failure(f"Scoring failed and the previous scores stay published: {error}") from error

    log(f"Published scoring run {plan.scoring_run_id}: {plan.written_rows} users, model {plan.champion.model_version}")
    return dg.MaterializeResult(
        metadata={
            "scoring_run_id": plan.scoring_run_id,
            "model_version": plan.champion.model_version,
            "scoring_method": method.name,
            "feature_date": str(plan.feature_date),
            "users_scored": plan.written_rows,
            "dagster/row_count": plan.written_rows,
            "approximate_mean_probability": round(plan.approximate_mean_probability(), 4),
            "score_histogram": dg.MetadataValue.md(histogram_markdown(plan.histogram_counts, "Churn probabilities")),
            "scoring_seconds": round(time.monotonic() - started, 1),
        }
    )
