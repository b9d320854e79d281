"""Score users with a champion registered in Vertex AI: online prediction in chunks, or a batch prediction job.

A batch run has three steps so that the embedded warehouse is not held while Vertex AI works:
stage the instances files in Cloud Storage, run the job, then read its outputs back.
"""

import json
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import numpy as np

from churn_assets.defs.deployment.deployers import DeploymentError
from churn_assets.defs.deployment.vertex import (
    CLOUD_ERRORS,
    VertexDeployer,
    VertexSettings,
    call_with_retries,
    filter_string,
    initialise_vertex,
    storage_client,
)
from churn_assets.defs.scoring.plan import ScoringError

USER_ID_FIELD = "user_id"
FINISHED_BADLY = ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED")


class VertexScoringError(ScoringError):
    """Raised when scoring on Vertex AI failed. No scores of the run are published."""


# Instances


def iter_feature_instances(features: Mapping[str, np.ndarray], feature_columns: Sequence[str] | None = None) -> Iterator[dict]:
    """Yield one prediction instance per row: {"feature": [value], ...}, the format of {"instances": [...]}.

    Each value is a one-element list because every model input has shape (None, 1), and TensorFlow
    Serving stacks the per-instance values of an input along a new batch dimension.
    """
    columns = list(feature_columns if feature_columns is not None else features)
    arrays = {name: np.asarray(features[name], dtype=np.float64).reshape(-1) for name in columns}
    row_counts = {name: len(values) for name, values in arrays.items()}
    if len(set(row_counts.values())) > 1:
        raise ValueError(f"Feature arrays have different row counts: {row_counts}. Pass one value per row for every feature.")
    for name, values in arrays.items():
        if not np.all(np.isfinite(values)):
            raise ValueError(f"Feature {name} contains NaN or infinite values, which JSON cannot carry. Impute them first.")
    row_count = next(iter(row_counts.values()), 0)
    for row in range(row_count):
        yield {name: [float(arrays[name][row])] for name in columns}


def feature_instances(features: Mapping[str, np.ndarray], feature_columns: Sequence[str] | None = None) -> list[dict]:
    return list(iter_feature_instances(features, feature_columns))


def write_instances_jsonl(features: Mapping[str, np.ndarray], user_ids: Sequence, path: Path, key_field: str = USER_ID_FIELD) -> int:
    """Write one batch prediction instance per line and return the number of lines.

    Each line is an instance of iter_feature_instances() plus `key_field` with the user id. The batch
    job from start_batch_prediction() names `key_field` as InstanceConfig.key_field, so Vertex AI
    removes it from the instance sent to the model and writes it to the output's `key` field.
    """
    if key_field in features:
        raise ValueError(f"Key field {key_field!r} is also a feature name. Choose another key field.")
    if hasattr(user_ids, "to_pylist"):
        user_ids = user_ids.to_pylist()
    row_count = len(np.asarray(next(iter(features.values()), [])).reshape(-1))
    if len(user_ids) != row_count:
        raise ValueError(f"Got {len(user_ids)} user ids for {row_count} feature rows. Pass one user id per row.")

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as output:
        for user_id, instance in zip(user_ids, iter_feature_instances(features)):
            key = user_id.item() if isinstance(user_id, np.generic) else user_id
            output.write(json.dumps({key_field: key, **instance}) + "\n")
    return row_count


def upload_file(settings: VertexSettings, local_path: Path, gcs_uri: str, credentials=None, log=print) -> None:
    """Upload one local file, such as an instances file, to `gcs_uri`."""
    bucket_name, object_name = split_gcs_uri(gcs_uri)
    try:
        blob = storage_client(settings, credentials).bucket(bucket_name).blob(object_name)
        call_with_retries(
            f"Uploading {gcs_uri}",
            lambda: blob.upload_from_filename(str(local_path), timeout=settings.request_timeout_seconds, retry=None),
            settings.retries,
            settings.retry_delay_seconds,
            log,
        )
    except CLOUD_ERRORS as error:
        raise VertexScoringError(f"Uploading {local_path} to {gcs_uri} failed: {error}") from error


def split_gcs_uri(gcs_uri: str) -> tuple[str, str]:
    """Return (bucket, object name) of gs://bucket/object."""
    parts = urlsplit(gcs_uri)
    if parts.scheme != "gs" or not parts.netloc or not parts.path.strip("/"):
        raise ValueError(f"Cloud Storage URI {gcs_uri!r} is invalid. Use gs://bucket/path/to/object.")
    return parts.netloc, parts.path.lstrip("/")


# Batch prediction jobs


def job_client(settings: VertexSettings, credentials=None):
    """Return the SDK's job service client for the settings' region, endpoint and transport."""
    from google.cloud.aiplatform import initializer, utils

    initialise_vertex(settings, credentials)
    return initializer.global_config.create_client(
        client_class=utils.JobClientWithOverride, credentials=credentials, location_override=settings.region
    )


def start_batch_prediction(
    settings: VertexSettings,
    model_name: str,
    gcs_sources: Sequence[str],
    gcs_destination_prefix: str,
    job_display_name: str,
    credentials=None,
    key_field: str = USER_ID_FIELD,
) -> str:
    """Start a batch prediction job over JSON Lines instances files and return its resource name without waiting.

    `model_name` is a Model Registry resource name, with @version to pin a version. Outputs are JSON
    Lines files under `gcs_destination_prefix`, one {"key": ..., "prediction": [...]} object per instance.
    """
    from google.cloud.aiplatform import initializer
    from google.cloud.aiplatform_v1.types import BatchDedicatedResources, BatchPredictionJob, GcsDestination, GcsSource
    from google.cloud.aiplatform_v1.types import MachineSpec

    for uri in (*gcs_sources, gcs_destination_prefix):
        if not uri.startswith("gs://"):
            raise ValueError(f"Batch prediction location {uri!r} is invalid. Use a gs:// URI.")
    # Model.batch_predict in google-cloud-aiplatform 2.7.0 cannot set InstanceConfig.key_field, so the
    # job is created with the SDK's job service client, which uses the same endpoint and transport.
    job = BatchPredictionJob(
        display_name=job_display_name,
        model=model_name,
        input_config=BatchPredictionJob.InputConfig(instances_format="jsonl", gcs_source=GcsSource(uris=list(gcs_sources))),
        instance_config=BatchPredictionJob.InstanceConfig(key_field=key_field),
        output_config=BatchPredictionJob.OutputConfig(
            predictions_format="jsonl", gcs_destination=GcsDestination(output_uri_prefix=gcs_destination_prefix)
        ),
        dedicated_resources=BatchDedicatedResources(
            machine_spec=MachineSpec(machine_type=settings.machine_type),
            starting_replica_count=settings.min_replica_count,
            max_replica_count=settings.max_replica_count,
        ),
        labels=dict(settings.labels),
    )
    try:
        created = job_client(settings, credentials).create_batch_prediction_job(
            parent=initializer.global_config.common_location_path(settings.project, settings.region),
            batch_prediction_job=job,
            timeout=settings.request_timeout_seconds,
        )
    except CLOUD_ERRORS as error:
        raise VertexScoringError(
            f"Starting batch prediction job {job_display_name!r} for model {model_name} over {len(gcs_sources)} "
            f"instances files under {gcs_destination_prefix.rsplit('/', 1)[0]} failed: {error}"
        ) from error
    return created.name


def wait_for_batch_job(
    settings: VertexSettings,
    job_name: str,
    credentials=None,
    log=print,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
):
    """Poll the job until it succeeds and return it, or cancel it after the batch timeout.

    Raises VertexScoringError naming the job when it fails, is cancelled, or runs past the timeout.
    """
    client = job_client(settings, credentials)
    deadline = clock() + settings.batch_timeout_seconds
    last_state = None
    while True:
        try:
            job = call_with_retries(
                f"Reading batch prediction job {job_name}",
                lambda: client.get_batch_prediction_job(name=job_name, timeout=settings.request_timeout_seconds),
                settings.retries,
                settings.retry_delay_seconds,
                log,
            )
        except CLOUD_ERRORS as error:
            raise VertexScoringError(f"Reading batch prediction job {job_name} failed: {error}") from error

        state = job.state.name
        if state != last_state:
            log(f"Batch prediction job {job_name} is {state}")
            last_state = state
        if state == "JOB_STATE_SUCCEEDED":
            return job
        if state in FINISHED_BADLY:
            raise VertexScoringError(
                f"Batch prediction job {job_name} ended as {state}: {job.error.message or 'no error message'}. "
                "Its logs are in the Vertex AI console under Batch predictions."
            )
        if clock() >= deadline:
            cancel_batch_job(client, job_name, settings, log)
            raise VertexScoringError(
                f"Batch prediction job {job_name} did not finish within {settings.batch_timeout_seconds:g} s and was cancelled. "
                "Raise CHURN_VERTEX_BATCH_TIMEOUT_SECONDS or the replica count."
            )
        sleep(settings.batch_poll_seconds)


def cancel_batch_job(client, job_name: str, settings: VertexSettings, log) -> None:
    try:
        client.cancel_batch_prediction_job(name=job_name, timeout=settings.request_timeout_seconds)
        log(f"Cancelled batch prediction job {job_name}")
    except CLOUD_ERRORS as error:
        log(f"Cancelling batch prediction job {job_name} failed: {error}. Cancel it in the Vertex AI console.")


def iter_output_lines(settings: VertexSettings, gcs_output_directory: str, credentials=None) -> Iterator[str]:
    """Stream the prediction lines of a finished job's output folder, file by file.

    Raises VertexScoringError when the folder contains a non-empty errors file, quoting its first line.
    """
    bucket_name, prefix = split_gcs_uri(gcs_output_directory.rstrip("/") + "/")
    try:
        client = storage_client(settings, credentials)
        blobs = sorted(client.list_blobs(bucket_name, prefix=prefix, timeout=settings.request_timeout_seconds), key=lambda blob: blob.name)
        for blob in blobs:
            file_name = PurePosixPath(blob.name).name
            if "error" in file_name:
                if blob.size:
                    first_line = blob.download_as_bytes(end=2047, timeout=settings.request_timeout_seconds).decode("utf-8", "replace")
                    raise VertexScoringError(
                        f"Batch prediction output gs://{bucket_name}/{blob.name} reports failed instances: {first_line.splitlines()[0]}"
                    )
                continue
            with blob.open("r", encoding="utf-8", timeout=settings.request_timeout_seconds) as lines:
                yield from lines
    except CLOUD_ERRORS as error:
        raise VertexScoringError(f"Reading batch prediction output under {gcs_output_directory} failed: {error}") from error


def iter_batch_predictions(lines: Iterable[str]) -> Iterator[tuple[object, float]]:
    """Yield (key, churn probability) for each batch prediction output line."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if "error" in record:
            raise VertexScoringError(f"Batch prediction output line {number} reports an error: {record['error']}")
        if "key" not in record or "prediction" not in record:
            raise VertexScoringError(
                f"Batch prediction output line {number} has no key or prediction field. Start the job with a key field."
            )
        yield record["key"], single_probability(record["prediction"])


def read_batch_predictions(lines: Iterable[str]) -> dict:
    """Map each key in batch prediction output lines to its churn probability."""
    return dict(iter_batch_predictions(lines))


def single_probability(prediction) -> float:
    """Return the one probability in a prediction such as [0.42] or 0.42."""
    values = np.asarray(prediction, dtype=np.float64).reshape(-1)
    if values.size != 1:
        raise VertexScoringError(f"Expected one churn probability per instance, got {prediction!r}.")
    return float(values[0])


class BatchScoring:
    """One scoring run on Vertex AI: stage instances files, run the job, then read the predictions back.

    Objects go under <staging bucket>/scoring/<scoring run id>/, so a retried run overwrites its own files.
    """

    def __init__(self, settings: VertexSettings, model_name: str, scoring_run_id: str, credentials=None, log=print):
        self.settings = settings
        self.model_name = model_name
        self.scoring_run_id = scoring_run_id
        self.credentials = credentials
        self.log = log
        self.run_uri = f"{settings.staging_bucket.rstrip('/')}/scoring/{scoring_run_id}"
        self.instance_uris: list[str] = []
        self.staged_rows = 0

    def stage_chunk(self, features: Mapping[str, np.ndarray], user_ids: Sequence) -> None:
        """Write one chunk's instances file, upload it, and delete the local copy."""
        uri = f"{self.run_uri}/instances/part-{len(self.instance_uris):05d}.jsonl"
        with tempfile.TemporaryDirectory(prefix="churn-instances-") as folder:
            path = Path(folder) / "instances.jsonl"
            rows = write_instances_jsonl(features, user_ids, path)
            upload_file(self.settings, path, uri, self.credentials, self.log)
        self.instance_uris.append(uri)
        self.staged_rows += rows

    def run(self) -> str:
        """Start the job over the staged files, wait for it, and return its output folder."""
        if not self.instance_uris:
            raise VertexScoringError("No instances were staged, so there is nothing to score.")
        # NOTE: a retried attempt starts a new job even when the previous attempt's job finished.
        job_name = start_batch_prediction(
            self.settings,
            self.model_name,
            self.instance_uris,
            f"{self.run_uri}/predictions",
            f"churn-scoring-{self.scoring_run_id}"[:128],
            self.credentials,
        )
        self.log(f"Started batch prediction job {job_name} over {self.staged_rows} users in {len(self.instance_uris)} files")
        job = wait_for_batch_job(self.settings, job_name, self.credentials, self.log)
        failed = job.completion_stats.failed_count
        if failed:
            raise VertexScoringError(f"Batch prediction job {job_name} failed for {failed} of {self.staged_rows} users.")
        return job.output_info.gcs_output_directory

    def iter_prediction_chunks(self, output_directory: str, chunk_rows: int) -> Iterator[tuple[list, np.ndarray]]:
        """Yield (user ids, probabilities) of at most `chunk_rows` users at a time."""
        user_ids: list = []
        probabilities: list[float] = []
        for key, probability in iter_batch_predictions(iter_output_lines(self.settings, output_directory, self.credentials)):
            user_ids.append(key)
            probabilities.append(probability)
            if len(user_ids) >= chunk_rows:
                yield user_ids, np.asarray(probabilities, dtype=np.float64)
                user_ids, probabilities = [], []
        if user_ids:
            yield user_ids, np.asarray(probabilities, dtype=np.float64)


# Online prediction


def predict_online(
    endpoint,
    instances: Sequence[dict],
    chunk_size: int,
    timeout_seconds: float | None = None,
    retries: int = 3,
    retry_delay_seconds: float = 1.0,
    log=print,
) -> np.ndarray:
    """Send `instances` to an aiplatform.Endpoint `chunk_size` at a time and return probabilities in instance order."""
    if chunk_size < 1:
        raise ValueError(f"Chunk size {chunk_size} is invalid. Use 1 or more instances per request.")
    probabilities = np.empty(len(instances), dtype=np.float64)
    chunk_count = math.ceil(len(instances) / chunk_size)
    for chunk_index in range(chunk_count):
        start = chunk_index * chunk_size
        chunk = list(instances[start:start + chunk_size])
        try:
            response = call_with_retries(
                f"Prediction request {chunk_index + 1}/{chunk_count} to {endpoint.resource_name}",
                lambda: endpoint.predict(instances=chunk, timeout=timeout_seconds),
                retries,
                retry_delay_seconds,
                log,
            )
        except CLOUD_ERRORS as error:
            raise VertexScoringError(
                f"Prediction request {chunk_index + 1}/{chunk_count} with instances {start}-{start + len(chunk) - 1} "
                f"to endpoint {endpoint.resource_name} failed: {error}"
            ) from error
        if len(response.predictions) != len(chunk):
            raise VertexScoringError(
                f"Endpoint {endpoint.resource_name} returned {len(response.predictions)} predictions for {len(chunk)} instances."
            )
        probabilities[start:start + len(chunk)] = [single_probability(prediction) for prediction in response.predictions]
    return probabilities


class OnlinePredictor:
    """Scores feature chunks through an endpoint, with the same predict() as the local SavedModelScorer."""

    def __init__(self, settings: VertexSettings, endpoint, log=print):
        self.settings = settings
        self.endpoint = endpoint
        self.log = log

    def predict(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        settings = self.settings
        return predict_online(
            self.endpoint,
            feature_instances(features),
            settings.online_chunk_size,
            settings.request_timeout_seconds,
            settings.retries,
            settings.retry_delay_seconds,
            self.log,
        )


# Choosing how to score


def registered_champion(settings: VertexSettings, model_version: str, credentials=None, log=print):
    """Return the aiplatform.Model registered for the champion's training version."""
    try:
        model = VertexDeployer(settings, credentials).registered_model(model_version, log)
    except (DeploymentError, *CLOUD_ERRORS) as error:
        raise VertexScoringError(f"Looking up {model_version} in the Vertex AI Model Registry failed: {error}") from error
    if model is None:
        raise VertexScoringError(
            f"Champion {model_version} is not registered in Vertex AI model {settings.model_display_name!r} "
            f"of {settings.project}/{settings.region}. Materialize deployed_model with the vertex target again."
        )
    return model


def endpoint_serving_only(settings: VertexSettings, model, credentials=None, log=print):
    """Return the configured endpoint if it sends all its traffic to `model`'s version, else None.

    An endpoint that splits traffic would score part of the users with another version.
    """
    from google.cloud import aiplatform

    if not settings.endpoint_display_name:
        return None
    try:
        endpoints = aiplatform.Endpoint.list(filter=f"display_name={filter_string(settings.endpoint_display_name)}", credentials=credentials)
        if len(endpoints) != 1:
            log(f"Found {len(endpoints)} endpoints named {settings.endpoint_display_name!r}, so online prediction is not used")
            return None
        endpoint = endpoints[0]
        champion_ids = {
            deployed.id
            for deployed in endpoint.list_models()
            if deployed.model == model.resource_name and deployed.model_version_id == model.version_id
        }
        champion_share = sum(share for deployed_id, share in endpoint.traffic_split.items() if deployed_id in champion_ids)
    except CLOUD_ERRORS as error:
        raise VertexScoringError(f"Reading endpoint {settings.endpoint_display_name!r} failed: {error}") from error
    if champion_share < 100:
        log(f"Endpoint {endpoint.resource_name} sends {champion_share}% of its traffic to {model.versioned_resource_name}, "
            "so online prediction is not used")
        return None
    return endpoint


def choose_mode(settings: VertexSettings, user_count: int, endpoint) -> str:
    """Return local, online or batch for a run over `user_count` users."""
    if settings.scoring_mode == "online" and endpoint is None:
        raise VertexScoringError(
            f"CHURN_VERTEX_SCORING_MODE is online, but endpoint {settings.endpoint_display_name or '(unset)'} does not "
            "send all its traffic to the champion. Set CHURN_VERTEX_ENDPOINT_DISPLAY_NAME and deploy, or use batch."
        )
    if settings.scoring_mode != "auto":
        return settings.scoring_mode
    return "online" if endpoint is not None and user_count <= settings.online_max_users else "batch"
