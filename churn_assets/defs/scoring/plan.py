"""The steps of a scoring run that do not depend on where the model runs: check, read, write, publish."""

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import dagster as dg
import numpy as np
import pyarrow as pa

from churn_assets.defs.deployment import registry
from churn_assets.defs.scoring import writer
from churn_assets.training.features import FeatureSchemaError, arrow_to_feature_arrays, check_feature_columns, feature_select_sql
from churn_assets.warehouse.schema import ensure_pipeline_tables

NUMERIC_TYPE_PREFIXES = ("Int", "UInt", "Float", "Decimal", "Nullable(Int", "Nullable(UInt", "Nullable(Float", "Nullable(Decimal")
HISTOGRAM_BINS = 20


class ScoringError(RuntimeError):
    """Raised when the model could not score. Nothing of the run is published."""


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


@dataclass
class ScoringPlan:
    """The champion, user count and feature date of one scoring run, and the scores written so far."""

    scoring_run_id: str
    champion: registry.RegisteredModel
    user_count: int
    feature_date: date
    scored_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    histogram_counts: np.ndarray = field(default_factory=lambda: np.zeros(HISTOGRAM_BINS, dtype=np.int64))
    written_rows: int = 0

    def chunk_count(self, chunk_rows: int) -> int:
        return max(1, math.ceil(self.user_count / chunk_rows))

    def approximate_mean_probability(self) -> float:
        bin_centres = (np.arange(HISTOGRAM_BINS) + 0.5) / HISTOGRAM_BINS
        return float((self.histogram_counts * bin_centres).sum() / max(1, self.histogram_counts.sum()))


def prepare_run(client, scoring_run_id: str, log) -> ScoringPlan | None:
    """Check that the champion can score today's features and clear an earlier attempt's rows.

    Returns None when this run id is already published, so running it again changes nothing.
    """
    ensure_pipeline_tables(client)
    writer.ensure_latest_scores_view(client)
    champion = registry.current_champion(client)
    if champion is None:
        raise dg.Failure("No champion model in analytics.model_registry. Materialize deployed_model first.", allow_retries=False)

    column_types = feature_columns_of(client)
    try:
        check_feature_columns(list(column_types), champion.feature_columns, "analytics.user_features")
        check_numeric_features(column_types, champion.feature_columns)
    except FeatureSchemaError as error:
        raise dg.Failure(f"Model {champion.model_version} cannot score these features: {error}", allow_retries=False) from error

    user_count = int(client.command("SELECT count() FROM analytics.user_features"))
    if user_count == 0:
        raise dg.Failure("analytics.user_features is empty. Load events and build the dbt models first.", allow_retries=False)
    feature_date = client.query("SELECT any(feature_date) FROM analytics.user_features").result_rows[0][0]
    if writer.is_run_published(client, scoring_run_id):
        log(f"Scoring run {scoring_run_id} is already published; nothing to do")
        return None

    removed = writer.discard_partial_run(client, scoring_run_id)
    if removed:
        log(f"Removed {removed} score rows left by an earlier attempt of run {scoring_run_id}")
    return ScoringPlan(scoring_run_id, champion, user_count, feature_date)


def iter_feature_chunks(client, plan: ScoringPlan, chunk_rows: int) -> Iterator[tuple[pa.Array, dict[str, np.ndarray]]]:
    """Yield (user ids, {feature: float32 column}) for about `chunk_rows` users at a time, in columnar form."""
    chunk_count = plan.chunk_count(chunk_rows)
    columns = plan.champion.feature_columns
    for chunk_index in range(chunk_count):
        chunk = client.query_arrow(
            f"SELECT user_id, {feature_select_sql(columns)} FROM analytics.user_features "
            "WHERE cityHash64(user_id) % {chunks:UInt64} = {index:UInt64}",
            parameters={"chunks": chunk_count, "index": chunk_index},
        )
        if chunk.num_rows:
            yield chunk.column("user_id").combine_chunks(), arrow_to_feature_arrays(chunk, columns)


def write_scores(client, plan: ScoringPlan, user_ids, probabilities: np.ndarray) -> None:
    """Write one chunk of scores, which stay invisible to readers until publish()."""
    if len(user_ids) != len(probabilities):
        raise dg.Failure(f"Got {len(probabilities)} probabilities for {len(user_ids)} users, so the scores were not published.")
    if not np.all(np.isfinite(probabilities)) or np.any((probabilities < 0) | (probabilities > 1)):
        raise dg.Failure("The model returned probabilities outside [0, 1] or non-finite values, so the scores were not published.")
    user_id_array = user_ids if isinstance(user_ids, pa.Array) else pa.array(user_ids, pa.string())
    writer.write_chunk(
        client, plan.scoring_run_id, plan.champion.model_version, plan.feature_date, user_id_array, probabilities, plan.scored_at
    )
    plan.histogram_counts += np.histogram(probabilities, bins=HISTOGRAM_BINS, range=(0, 1))[0]
    plan.written_rows += len(probabilities)


def publish(client, plan: ScoringPlan) -> None:
    """Publish the run if it contains exactly one score for every user it set out to score."""
    rows, users = client.query(
        "SELECT count(), uniqExact(user_id) FROM analytics.churn_scores WHERE scoring_run_id = {run:String}",
        parameters={"run": plan.scoring_run_id},
    ).result_rows[0]
    if rows != plan.user_count or users != plan.user_count:
        raise dg.Failure(
            f"Scoring run {plan.scoring_run_id} wrote {rows} rows for {users} distinct users, but "
            f"analytics.user_features has {plan.user_count} users, so the scores were not published."
        )
    writer.complete_run(client, plan.scoring_run_id, plan.champion.model_version, plan.feature_date, plan.user_count)
