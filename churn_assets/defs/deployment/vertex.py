"""Deploy the churn model to Vertex AI: upload the SavedModel, register it, and optionally serve it on an endpoint.

Credentials come from the environment only: Application Default Credentials, which include a
service-account key file named by GOOGLE_APPLICATION_CREDENTIALS. Nothing here logs them.
"""

import json
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, TypeVar
from urllib.parse import urlsplit

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core.exceptions import GoogleAPICallError, RetryError
from google.auth.exceptions import GoogleAuthError, TransportError

from churn_assets.defs.deployment.deployers import Deployer, DeploymentError
from churn_assets.defs.training.artifacts import TrainedModel

ENVIRONMENT_PREFIX = "CHURN_VERTEX_"
MODEL_VERSION_LABEL = "churn_model_version"
API_TRANSPORTS = ("grpc", "rest")
SCORING_MODES = ("auto", "batch", "online", "local")

# Errors worth another attempt: rate limits, server-side failures and broken connections.
TRANSIENT_ERRORS = (
    api_exceptions.TooManyRequests,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.ServiceUnavailable,
    api_exceptions.GatewayTimeout,
    api_exceptions.DeadlineExceeded,
    requests.ConnectionError,
    requests.Timeout,
    TransportError,
)
# ValueError is included because the SDK raises it for arguments the API would reject, such as invalid labels.
CLOUD_ERRORS = (GoogleAPICallError, RetryError, GoogleAuthError, requests.RequestException, ValueError)

Result = TypeVar("Result")


def default_serving_container_image_uri(region: str) -> str:
    """Return the prebuilt TensorFlow 2 CPU prediction image from the Artifact Registry multi-region nearest `region`."""
    # Vertex AI publishes each prebuilt prediction image in the us, europe and asia multi-regions
    # (https://cloud.google.com/vertex-ai/docs/predictions/pre-built-containers), and tf2-cpu.2-15 is the newest
    # TensorFlow CPU image listed there and in google-cloud-aiplatform 2.7.0. Other regions may pull from any of them.
    # NOTE: training exports with TensorFlow 2.21, and serving that SavedModel on TensorFlow Serving 2.15 is untested.
    geography = region.split("-", 1)[0]
    if geography == "europe":
        multi_region = "europe"
    elif geography in ("asia", "australia"):
        multi_region = "asia"
    else:
        multi_region = "us"
    return f"{multi_region}-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"


def model_version_label(version: str) -> str:
    """Return `version` as a valid label value: lowercase letters, digits, `_` and `-`, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "_", version.lower())[:63]


@dataclass(frozen=True)
class VertexSettings:
    """Project, region, staging bucket and serving options of the Vertex AI deployment target."""

    project: str
    region: str
    staging_bucket: str
    model_display_name: str = "churn-model"
    serving_container_image_uri: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    version_aliases: list[str] = field(default_factory=list)
    endpoint_display_name: str | None = None
    machine_type: str = "n1-standard-2"
    min_replica_count: int = 1
    max_replica_count: int = 1
    traffic_percentage: int = 100
    request_timeout_seconds: float = 300.0
    retries: int = 3
    retry_delay_seconds: float = 1.0
    api_endpoint: str | None = None
    storage_api_endpoint: str | None = None
    api_transport: str | None = None
    scoring_mode: str = "auto"
    online_max_users: int = 10_000
    online_chunk_size: int = 500
    batch_timeout_seconds: float = 6 * 3600.0
    batch_poll_seconds: float = 30.0

    def __post_init__(self):
        for name in ("project", "region", "model_display_name"):
            if not getattr(self, name):
                raise ValueError(f"Vertex AI setting {name} is empty. Set it to a non-empty value.")
        parts = urlsplit(self.staging_bucket)
        if parts.scheme != "gs" or not parts.netloc:
            raise ValueError(
                f"Vertex AI staging bucket {self.staging_bucket!r} is invalid. Use a Cloud Storage URI such as gs://my-bucket."
            )
        if not 0 <= self.traffic_percentage <= 100:
            raise ValueError(f"Traffic percentage {self.traffic_percentage} is invalid. Use a value from 0 to 100.")
        if not 1 <= self.min_replica_count <= self.max_replica_count:
            raise ValueError(
                f"Replica counts min={self.min_replica_count}, max={self.max_replica_count} are invalid. "
                "Use 1 <= min_replica_count <= max_replica_count."
            )
        if self.request_timeout_seconds <= 0:
            raise ValueError(f"Request timeout {self.request_timeout_seconds} s is invalid. Use a positive number of seconds.")
        if self.retries < 0 or self.retry_delay_seconds < 0:
            raise ValueError(
                f"Retries {self.retries} and retry delay {self.retry_delay_seconds} s are invalid. Use values of 0 or more."
            )
        if self.api_transport is not None and self.api_transport not in API_TRANSPORTS:
            raise ValueError(f"API transport {self.api_transport!r} is invalid. Use one of {', '.join(API_TRANSPORTS)}.")
        if self.scoring_mode not in SCORING_MODES:
            raise ValueError(f"Scoring mode {self.scoring_mode!r} is invalid. Use one of {', '.join(SCORING_MODES)}.")
        if self.online_max_users < 0 or self.online_chunk_size < 1:
            raise ValueError(
                f"Online limits max_users={self.online_max_users}, chunk_size={self.online_chunk_size} are invalid. "
                "Use max_users >= 0 and chunk_size >= 1."
            )
        if self.batch_timeout_seconds <= 0 or self.batch_poll_seconds <= 0:
            raise ValueError(
                f"Batch timeout {self.batch_timeout_seconds} s and poll interval {self.batch_poll_seconds} s are invalid. "
                "Use positive numbers of seconds."
            )
        if not self.serving_container_image_uri:
            object.__setattr__(self, "serving_container_image_uri", default_serving_container_image_uri(self.region))

    @property
    def bucket_name(self) -> str:
        return urlsplit(self.staging_bucket).netloc

    def artifact_uri(self, version: str) -> str:
        """Return the Cloud Storage folder for one model version: <staging_bucket>/models/<version>/."""
        return f"{self.staging_bucket.rstrip('/')}/models/{version}/"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> "VertexSettings":
        """Read the settings from CHURN_VERTEX_* variables in `environ`.

        Required:
            CHURN_VERTEX_PROJECT: Google Cloud project ID.
            CHURN_VERTEX_REGION: Vertex AI region, for example europe-west4.
            CHURN_VERTEX_STAGING_BUCKET: gs://bucket or gs://bucket/prefix. Versions go to <this>/models/<version>/.
        Optional:
            CHURN_VERTEX_MODEL_DISPLAY_NAME: Model Registry display name (default churn-model).
            CHURN_VERTEX_SERVING_CONTAINER_IMAGE_URI: serving image (default: the prebuilt TensorFlow 2.15 CPU image nearest the region).
            CHURN_VERTEX_LABELS: comma-separated key=value labels for the model, endpoint and batch jobs.
            CHURN_VERTEX_VERSION_ALIASES: comma-separated aliases for each new version, for example champion.
            CHURN_VERTEX_ENDPOINT_DISPLAY_NAME: endpoint to deploy to, created if missing. Unset, deploy() only registers.
            CHURN_VERTEX_MACHINE_TYPE: machine type for the endpoint and batch jobs (default n1-standard-2).
            CHURN_VERTEX_MIN_REPLICA_COUNT, CHURN_VERTEX_MAX_REPLICA_COUNT: replica bounds for the endpoint and batch jobs (default 1 and 1).
            CHURN_VERTEX_TRAFFIC_PERCENTAGE: share of endpoint traffic, 0-100, for the new version (default 100).
            CHURN_VERTEX_REQUEST_TIMEOUT_SECONDS: timeout of each API request, not of the long-running operations it starts (default 300).
            CHURN_VERTEX_RETRIES: extra attempts of object uploads and lookups after a transient error (default 3).
                Registering and deploying are not retried.
            CHURN_VERTEX_RETRY_DELAY_SECONDS: delay before the first retry, doubled each time (default 1).
            CHURN_VERTEX_API_ENDPOINT: Vertex AI API host, for example a Private Service Connect endpoint.
            CHURN_VERTEX_STORAGE_API_ENDPOINT: Cloud Storage API URL.
            CHURN_VERTEX_API_TRANSPORT: grpc or rest (default: the SDK's choice, grpc).
            CHURN_VERTEX_SCORING_MODE: how churn_scores scores a Vertex champion (default auto).
                online sends chunks to the endpoint. batch runs a batch prediction job. local scores the
                local copy of the same SavedModel. auto picks online when the endpoint sends all its
                traffic to the champion and there are at most CHURN_VERTEX_ONLINE_MAX_USERS users, else batch.
            CHURN_VERTEX_ONLINE_MAX_USERS: largest user count auto scores online (default 10000).
            CHURN_VERTEX_ONLINE_CHUNK_SIZE: instances per online prediction request (default 500).
            CHURN_VERTEX_BATCH_TIMEOUT_SECONDS: how long to wait for a batch prediction job before cancelling it (default 21600).
            CHURN_VERTEX_BATCH_POLL_SECONDS: interval between batch job state checks (default 30).

        Raises ValueError naming the variable that is missing or invalid.
        """

        def read(name: str) -> str | None:
            value = environ.get(ENVIRONMENT_PREFIX + name, "").strip()
            return value or None

        def require(name: str) -> str:
            value = read(name)
            if value is None:
                raise ValueError(f"Environment variable {ENVIRONMENT_PREFIX}{name} is missing. Set it to use the vertex target.")
            return value

        def convert(name: str, parse: Callable[[str], Result]) -> dict[str, Result]:
            value = read(name)
            if value is None:
                return {}
            try:
                return {name.lower(): parse(value)}
            except ValueError as error:
                raise ValueError(f"Environment variable {ENVIRONMENT_PREFIX}{name}={value!r} is invalid: {error}") from error

        optional: dict[str, object] = {}
        for name in (
            "MODEL_DISPLAY_NAME", "SERVING_CONTAINER_IMAGE_URI", "ENDPOINT_DISPLAY_NAME", "MACHINE_TYPE",
            "API_ENDPOINT", "STORAGE_API_ENDPOINT", "API_TRANSPORT", "SCORING_MODE",
        ):
            optional |= convert(name, str)
        for name in (
            "MIN_REPLICA_COUNT", "MAX_REPLICA_COUNT", "TRAFFIC_PERCENTAGE", "RETRIES", "ONLINE_MAX_USERS", "ONLINE_CHUNK_SIZE",
        ):
            optional |= convert(name, int)
        for name in ("REQUEST_TIMEOUT_SECONDS", "RETRY_DELAY_SECONDS", "BATCH_TIMEOUT_SECONDS", "BATCH_POLL_SECONDS"):
            optional |= convert(name, float)
        optional |= convert("LABELS", parse_labels)
        optional |= convert("VERSION_ALIASES", parse_list)

        required = {name.lower(): require(name) for name in ("PROJECT", "REGION", "STAGING_BUCKET")}
        try:
            return cls(**required, **optional)
        except ValueError as error:
            raise ValueError(f"The {ENVIRONMENT_PREFIX}* settings are invalid: {error}") from error


def parse_list(text: str) -> list[str]:
    """Split a comma-separated list, dropping blanks."""
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_labels(text: str) -> dict[str, str]:
    """Parse comma-separated key=value pairs."""
    labels = {}
    for item in parse_list(text):
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"label {item!r} is not in key=value form")
        labels[key.strip()] = value.strip()
    return labels


def call_with_retries(action: str, function: Callable[[], Result], retries: int, delay_seconds: float, log) -> Result:
    """Call `function`, retrying up to `retries` times after a transient error with a doubling delay."""
    attempt = 0
    while True:
        try:
            return function()
        except TRANSIENT_ERRORS as error:
            if attempt >= retries:
                raise
            delay = delay_seconds * 2**attempt
            attempt += 1
            log(f"{action} failed: {error}. Retry {attempt} of {retries} in {delay:g} s")
            time.sleep(delay)


@contextmanager
def deployment_step(description: str, advice: str) -> Iterator[None]:
    """Raise DeploymentError with `description` and `advice` when a Google Cloud call inside fails."""
    try:
        yield
    except CLOUD_ERRORS as error:
        raise DeploymentError(f"{description} failed: {error}. {advice}") from error


def storage_client(settings: VertexSettings, credentials=None):
    """Create a Cloud Storage client for the settings' project and optional API endpoint."""
    from google.cloud import storage

    client_options = {"api_endpoint": settings.storage_api_endpoint} if settings.storage_api_endpoint else None
    return storage.Client(project=settings.project, credentials=credentials, client_options=client_options)


def initialise_vertex(settings: VertexSettings, credentials=None) -> None:
    """Point the Vertex AI SDK at the settings' project, region, credentials, endpoint and transport."""
    from google.cloud import aiplatform

    # NOTE: aiplatform keeps these settings process-wide, and init() leaves an earlier api_endpoint or
    # api_transport in place when given None, so one process should not mix custom and default endpoints.
    aiplatform.init(
        project=settings.project,
        location=settings.region,
        credentials=credentials,
        api_endpoint=settings.api_endpoint,
        api_transport=settings.api_transport,
    )


def filter_string(value: str) -> str:
    """Quote `value` for a Vertex AI list filter."""
    return json.dumps(value)


class VertexDeployer(Deployer):
    """Uploads the SavedModel to Cloud Storage, registers it in the Vertex AI Model Registry and optionally serves it.

    deploy() returns the Cloud Storage artifact URI of the version folder. The Model Registry resource
    name is logged, and registered_model() finds it again by version.
    """

    target = "vertex"

    def __init__(self, settings: VertexSettings, credentials=None):
        self.settings = settings
        # None means Application Default Credentials. Tests pass anonymous credentials.
        self.credentials = credentials

    def deploy(self, trained: TrainedModel, log) -> str:
        settings = self.settings
        saved_model_dir = trained.saved_model_dir
        if not (saved_model_dir / "saved_model.pb").is_file():
            raise DeploymentError(f"No SavedModel at {saved_model_dir}: saved_model.pb is missing. Train the model again.")

        with deployment_step(
            f"Configuring the Vertex AI SDK for project {settings.project} in region {settings.region}",
            "Check CHURN_VERTEX_REGION against the Vertex AI locations.",
        ):
            initialise_vertex(settings, self.credentials)
        parent = self._find_parent_model(log)
        model = self._find_version(parent, trained.version, log) if parent is not None else None
        if model is not None:
            log(f"{trained.version} is already registered as {model.versioned_resource_name}, so the upload is skipped")
            artifact_uri = model.uri or settings.artifact_uri(trained.version)
        else:
            artifact_uri = settings.artifact_uri(trained.version)
            self._upload_saved_model(saved_model_dir, artifact_uri, log)
            model = self._register(trained, artifact_uri, parent, log)

        if settings.endpoint_display_name:
            self._deploy_to_endpoint(model, settings.endpoint_display_name, log)
        return artifact_uri

    def registered_model(self, version: str, log=print):
        """Return the aiplatform.Model registered for training version `version`, or None if there is none."""
        initialise_vertex(self.settings, self.credentials)
        parent = self._find_parent_model(log)
        return self._find_version(parent, version, log) if parent is not None else None

    def _retry(self, action: str, function: Callable[[], Result], log) -> Result:
        return call_with_retries(action, function, self.settings.retries, self.settings.retry_delay_seconds, log)

    def _upload_saved_model(self, saved_model_dir: Path, artifact_uri: str, log) -> None:
        settings = self.settings
        object_prefix = urlsplit(artifact_uri).path.lstrip("/")
        files = sorted(path for path in saved_model_dir.rglob("*") if path.is_file())
        with deployment_step(
            f"Connecting to Cloud Storage for {settings.staging_bucket}",
            "Set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`.",
        ):
            client = storage_client(settings, self.credentials)
        bucket = client.bucket(settings.bucket_name)

        for path in files:
            object_name = object_prefix + path.relative_to(saved_model_dir).as_posix()
            object_uri = f"gs://{settings.bucket_name}/{object_name}"
            blob = bucket.blob(object_name)
            with deployment_step(
                f"Uploading {path} to {object_uri}",
                f"Check that bucket gs://{settings.bucket_name} exists and the account may create objects in it.",
            ):
                # retry=None: retries come from call_with_retries, so one setting bounds them.
                self._retry(
                    f"Uploading {object_uri}",
                    lambda: blob.upload_from_filename(
                        str(path), content_type="application/octet-stream", timeout=settings.request_timeout_seconds, retry=None
                    ),
                    log,
                )
        log(f"Uploaded {len(files)} files to {artifact_uri}")

    def _find_parent_model(self, log):
        from google.cloud import aiplatform

        display_name = self.settings.model_display_name
        with deployment_step(
            f"Looking up Vertex AI model {display_name!r} in {self.settings.project}/{self.settings.region}",
            "Check that the Vertex AI API is enabled and the account has the Vertex AI User role.",
        ):
            models = self._retry(
                f"Listing Vertex AI models named {display_name!r}",
                lambda: aiplatform.Model.list(filter=f"display_name={filter_string(display_name)}"),
                log,
            )
        if len(models) > 1:
            names = ", ".join(model.resource_name for model in models)
            raise DeploymentError(
                f"Vertex AI has {len(models)} models named {display_name!r} ({names}). "
                "Set CHURN_VERTEX_MODEL_DISPLAY_NAME to a unique name or delete the extra models."
            )
        return models[0] if models else None

    def _find_version(self, parent, version: str, log):
        from google.cloud import aiplatform
        from google.cloud.aiplatform.models import ModelRegistry

        label = model_version_label(version)
        with deployment_step(
            f"Looking up version {version} of Vertex AI model {parent.resource_name}",
            "Check that the account has the Vertex AI User role.",
        ):
            versions = self._retry(
                f"Listing versions of {parent.resource_name}",
                lambda: ModelRegistry(parent, credentials=self.credentials).list_versions(
                    filter=f"labels.{MODEL_VERSION_LABEL}={filter_string(label)}"
                ),
                log,
            )
            if not versions:
                return None
            return self._retry(
                f"Reading {parent.resource_name}@{versions[0].version_id}",
                lambda: aiplatform.Model(parent.resource_name, version=versions[0].version_id, credentials=self.credentials),
                log,
            )

    def _register(self, trained: TrainedModel, artifact_uri: str, parent, log):
        from google.cloud import aiplatform

        settings = self.settings
        labels = {**settings.labels, MODEL_VERSION_LABEL: model_version_label(trained.version)}
        # Model.upload is not retried: after an ambiguous failure the version may exist, and the next
        # deploy() finds it by its churn_model_version label instead of registering it twice.
        with deployment_step(
            f"Registering {artifact_uri} as Vertex AI model {settings.model_display_name!r} in {settings.project}/{settings.region}",
            "Check that the Vertex AI API is enabled and the account has the Vertex AI User role.",
        ):
            model = aiplatform.Model.upload(
                display_name=settings.model_display_name,
                artifact_uri=artifact_uri,
                serving_container_image_uri=settings.serving_container_image_uri,
                parent_model=parent.resource_name if parent is not None else None,
                version_aliases=list(settings.version_aliases) or None,
                version_description=f"Churn model {trained.version}, ROC AUC {trained.metrics.get('roc_auc', float('nan')):.4f}",
                labels=labels,
                credentials=self.credentials,
                upload_request_timeout=settings.request_timeout_seconds,
                sync=True,
            )
        log(f"Registered {trained.version} as {model.versioned_resource_name} with image {settings.serving_container_image_uri}")
        return model

    def _deploy_to_endpoint(self, model, endpoint_display_name: str, log) -> None:
        settings = self.settings
        endpoint = self._find_or_create_endpoint(endpoint_display_name, log)
        with deployment_step(
            f"Reading the deployed models of Vertex AI endpoint {endpoint_display_name!r} ({endpoint.resource_name})",
            "Check that the account has the Vertex AI User role.",
        ):
            current_traffic_split = dict(endpoint.traffic_split)
            deployed = [
                deployed_model
                for deployed_model in endpoint.list_models()
                if deployed_model.model == model.resource_name and deployed_model.model_version_id == model.version_id
            ]
        if deployed:
            log(f"{model.versioned_resource_name} is already deployed to endpoint {endpoint.resource_name} as {deployed[0].id}")
            return

        traffic_percentage = settings.traffic_percentage
        if not current_traffic_split:
            # The API rejects a first deployed model that takes less than all traffic.
            traffic_percentage = 100
            if settings.traffic_percentage != 100:
                log(f"Endpoint {endpoint_display_name!r} serves no model yet, so the new version takes 100% of traffic")
        with deployment_step(
            f"Deploying {model.versioned_resource_name} to Vertex AI endpoint {endpoint_display_name!r} ({endpoint.resource_name})",
            f"Check the endpoint's deployment logs, the machine type {settings.machine_type} and the region's quota.",
        ):
            model.deploy(
                endpoint=endpoint,
                deployed_model_display_name=f"{settings.model_display_name}-{model.version_id}",
                traffic_percentage=traffic_percentage,
                machine_type=settings.machine_type,
                min_replica_count=settings.min_replica_count,
                max_replica_count=settings.max_replica_count,
                deploy_request_timeout=settings.request_timeout_seconds,
                sync=True,
            )
        log(f"Deployed {model.versioned_resource_name} to endpoint {endpoint.resource_name} with {traffic_percentage}% of traffic")

    def _find_or_create_endpoint(self, display_name: str, log):
        from google.cloud import aiplatform

        settings = self.settings
        with deployment_step(
            f"Looking up Vertex AI endpoint {display_name!r} in {settings.project}/{settings.region}",
            "Check that the account has the Vertex AI User role.",
        ):
            endpoints = self._retry(
                f"Listing Vertex AI endpoints named {display_name!r}",
                lambda: aiplatform.Endpoint.list(filter=f"display_name={filter_string(display_name)}"),
                log,
            )
        if len(endpoints) > 1:
            names = ", ".join(endpoint.resource_name for endpoint in endpoints)
            raise DeploymentError(
                f"Vertex AI has {len(endpoints)} endpoints named {display_name!r} ({names}). "
                "Set CHURN_VERTEX_ENDPOINT_DISPLAY_NAME to a unique name or delete the extra endpoints."
            )
        if endpoints:
            return endpoints[0]

        with deployment_step(
            f"Creating Vertex AI endpoint {display_name!r} in {settings.project}/{settings.region}",
            "Check that the account has the Vertex AI User role.",
        ):
            endpoint = aiplatform.Endpoint.create(
                display_name=display_name,
                labels=dict(settings.labels) or None,
                credentials=self.credentials,
                create_request_timeout=settings.request_timeout_seconds,
                sync=True,
            )
        log(f"Created Vertex AI endpoint {display_name!r} as {endpoint.resource_name}")
        return endpoint
