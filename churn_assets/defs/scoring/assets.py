"""Score every user with the champion model into analytics.churn_scores."""

import math
import time
from datetime import datetime, timezone

import dagster as dg
import numpy as np

from churn_assets.defs.deployment import registry
from churn_assets.defs.resources import WarehouseResource
from churn_assets.defs.scoring import writer
from churn_assets.scoring.saved_model import SavedModelScorer, local_path_from_uri
from churn_assets.training.evaluation import histogram_markdown
from churn_assets.training.features import FeatureSchemaError, arrow_to_feature_arrays, check_feature_columns, feature_select_sql
from churn_assets.warehouse.schema import ensure_pipeline_tables


class ScoringConfig(dg.Config):
    """How many users to read and score at a time; memory grows with this, not with the user count."""

    chunk_rows: int = 200_000


NUMERIC_TYPE_PREFIXES = ("Int", "UInt", "Float", "Decimal", "Nullable(Int", "Nullable(UInt", "Nullable(Float", "Nullable(Decimal")


def feature_columns_of(client) -> dict[str, str]:
    """Return {column: ClickHouse type} of analytics.user_features."""
    return dict(client.query(
        "SELECT name, type FROM system.columns WHERE database = 'analytics' AND table = 'user_features' ORDER BY position"
    ).result_rows)


def check_numeric_features(column_types: dict[str, str], expected: list[str]) -> None:
    """Raise FeatureSchemaError naming model features whose column is no longer numeric."""
    changed = [f"{name} ({column_types[name]})" for name in expected if name in column_types and not column_types[name].startswith(NUMERIC_TYPE_PREFIXES)]
    if changed:
        raise FeatureSchemaError(
            f"analytics.user_features columns changed type and are no longer numeric: {', '.join(changed)}. "
            "Fix the dbt model or retrain the model."
        )


@dg.asset(
    deps=["deployed_model", "user_features"],
    group_name="scoring",
    kinds={"tensorflow", "clickhouse"},
    description="One row per user and scoring run: the champion model's churn probability.",
)
def churn_scores(context: dg.AssetExecutionContext, config: ScoringConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
    started = time.monotonic()
    scoring_run_id = context.run_id
    scored_at = datetime.now(timezone.utc)

    with warehouse.open() as client:
        ensure_pipeline_tables(client)
        writer.ensure_latest_scores_view(client)
        champion = registry.current_champion(client)
        if champion is None:
            raise dg.Failure("No champion model in analytics.model_registry; materialize deployed_model first.")
        column_types = feature_columns_of(client)
        try:
            check_feature_columns(list(column_types), champion.feature_columns, "analytics.user_features")
            check_numeric_features(column_types, champion.feature_columns)
        except FeatureSchemaError as error:
            raise dg.Failure(f"Model {champion.model_version} cannot score these features: {error}", allow_retries=False) from error

        # NOTE: a Vertex champion is scored here from the identical local artifact. The Vertex batch
        # prediction helpers in deployment/vertex.py are not yet wired into this asset.
        scorer = SavedModelScorer(local_path_from_uri(champion.artifact_uri, champion.model_version))
        user_count = int(client.command("SELECT count() FROM analytics.user_features"))
        if user_count == 0:
            raise dg.Failure("analytics.user_features is empty; load events and build the dbt models first.")
        feature_date = client.query("SELECT any(feature_date) FROM analytics.user_features").result_rows[0][0]
        if writer.is_run_published(client, scoring_run_id):
            context.log.info(f"Scoring run {scoring_run_id} is already published; nothing to do")
            return dg.MaterializeResult(metadata={"scoring_run_id": scoring_run_id, "already_published": True})
        removed = writer.discard_partial_run(client, scoring_run_id)
        if removed:
            context.log.warning(f"Removed {removed} score rows left by an earlier attempt of run {scoring_run_id}")

        chunk_count = max(1, math.ceil(user_count / config.chunk_rows))
        histogram_counts = np.zeros(20, dtype=np.int64)
        scored = 0
        for chunk_index in range(chunk_count):
            chunk = client.query_arrow(
                f"SELECT user_id, {feature_select_sql(champion.feature_columns)} FROM analytics.user_features "
                "WHERE cityHash64(user_id) % {chunks:UInt64} = {index:UInt64}",
                parameters={"chunks": chunk_count, "index": chunk_index},
            )
            if chunk.num_rows == 0:
                continue
            probabilities = scorer.predict(arrow_to_feature_arrays(chunk, champion.feature_columns))
            if not np.all(np.isfinite(probabilities)):
                raise dg.Failure(f"The model returned non-finite probabilities in chunk {chunk_index}; scores were not published.")
            writer.write_chunk(client, scoring_run_id, champion.model_version, feature_date, chunk.column("user_id"), probabilities, scored_at)
            histogram_counts += np.histogram(probabilities, bins=20, range=(0, 1))[0]
            scored += chunk.num_rows
            context.log.info(f"Scored chunk {chunk_index + 1}/{chunk_count}: {scored}/{user_count} users")

        if scored != user_count:
            raise dg.Failure(f"Scored {scored} users but analytics.user_features has {user_count}; scores were not published.")
        writer.complete_run(client, scoring_run_id, champion.model_version, feature_date, scored)

    bin_centres = (np.arange(20) + 0.5) / 20
    mean_probability = float((histogram_counts * bin_centres).sum() / max(1, histogram_counts.sum()))
    context.log.info(f"Published scoring run {scoring_run_id}: {scored} users, model {champion.model_version}")
    return dg.MaterializeResult(
        metadata={
            "scoring_run_id": scoring_run_id,
            "model_version": champion.model_version,
            "feature_date": str(feature_date),
            "users_scored": scored,
            "approximate_mean_probability": round(mean_probability, 4),
            "score_histogram": dg.MetadataValue.md(histogram_markdown(histogram_counts, "Churn probabilities")),
            "scoring_seconds": round(time.monotonic() - started, 1),
        }
    )
