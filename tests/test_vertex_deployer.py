"""VertexDeployer and the Vertex AI scoring helpers against a fake Google Cloud on 127.0.0.1.

The fake serves the Cloud Storage JSON API and the Vertex AI REST API, so the real
google-cloud-storage and google-cloud-aiplatform clients build, send and parse every request.
"""

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pytest

from churn_assets.defs.deployment.deployers import DeploymentError
from churn_assets.defs.deployment.vertex import (
    MODEL_VERSION_LABEL,
    VertexDeployer,
    VertexSettings,
    feature_instances,
    initialise_vertex,
    predict_online,
    read_batch_predictions,
    start_batch_prediction,
    write_instances_jsonl,
)
from churn_assets.defs.training.artifacts import TrainedModel

PROJECT = "churn-test"
REGION = "europe-west4"
BUCKET = "churn-staging"
LOCATION = f"/v1/projects/{PROJECT}/locations/{REGION}"
VERSION = "churn-20261204-120000-abcdef12"
SAVED_MODEL_FILES = {
    "saved_model.pb": b"graph",
    "fingerprint.pb": b"fingerprint",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": b"\x00\x01weights\r\n",
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class FakeGoogleCloud:
    """In-memory Cloud Storage and Vertex AI that records each request and responds like the REST APIs."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[str] = []
        self.failures: list[tuple[str, re.Pattern, int, str]] = []
        self.buckets = {BUCKET}
        self.objects: dict[tuple[str, str], bytes] = {}
        self.models: dict[str, list[dict]] = {}
        self.endpoints: dict[str, dict] = {}
        self.batch_jobs: dict[str, dict] = {}
        self.next_id = 1000
        # Called with the instances of a predict request, it returns one prediction per instance.
        self.predictor = lambda instances: [[sum(value[0] for value in instance.values())] for instance in instances]
        self.routes = [
            ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)", self.get_bucket),
            ("POST", r"/upload/storage/v1/b/(?P<bucket>[^/]+)/o", self.upload_object),
            ("GET", LOCATION + r"/models", self.list_models),
            ("POST", LOCATION + r"/models:upload", self.upload_model),
            ("GET", LOCATION + r"/models/(?P<model>[^/@:]+):listVersions", self.list_model_versions),
            ("GET", LOCATION + r"/models/(?P<model>[^/@:]+)(?:@(?P<version>[^/:]+))?", self.get_model),
            ("GET", LOCATION + r"/endpoints", self.list_endpoints),
            ("POST", LOCATION + r"/endpoints", self.create_endpoint),
            ("GET", LOCATION + r"/endpoints/(?P<endpoint>[^/:]+)", self.get_endpoint),
            ("POST", LOCATION + r"/endpoints/(?P<endpoint>[^/:]+):deployModel", self.deploy_model),
            ("POST", LOCATION + r"/endpoints/(?P<endpoint>[^/:]+):predict", self.predict),
            ("POST", LOCATION + r"/batchPredictionJobs", self.create_batch_prediction_job),
            ("GET", LOCATION + r"/batchPredictionJobs/(?P<job>[^/]+)", self.get_batch_prediction_job),
        ]

    # Test helpers

    def fail_next(self, method: str, path_pattern: str, status: int, reason: str) -> None:
        """Fail the next request matching `method` and `path_pattern` with HTTP status `status`."""
        self.failures.append((method, re.compile(path_pattern), status, reason))

    def sent(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        pattern = re.compile(path_pattern)
        return [request for request in self.requests if request.method == method and pattern.fullmatch(request.path)]

    def new_id(self) -> str:
        self.next_id += 1
        return str(self.next_id)

    def add_model(self, display_name: str, labels: dict | None = None) -> str:
        model_id = self.new_id()
        name = f"projects/{PROJECT}/locations/{REGION}/models/{model_id}"
        self.models[model_id] = [{
            "name": name, "displayName": display_name, "versionId": "1", "versionAliases": ["default"],
            "labels": labels or {}, "artifactUri": "gs://old/models/old/",
            "supportedDeploymentResourcesTypes": ["DEDICATED_RESOURCES"],
        }]
        return name

    def add_endpoint(self, display_name: str, deployed: dict[str, int]) -> str:
        endpoint_id = self.new_id()
        name = f"projects/{PROJECT}/locations/{REGION}/endpoints/{endpoint_id}"
        self.endpoints[endpoint_id] = {
            "name": name, "displayName": display_name,
            "deployedModels": [
                {"id": deployed_id, "model": f"projects/{PROJECT}/locations/{REGION}/models/1", "modelVersionId": "1"}
                for deployed_id in deployed
            ],
            "trafficSplit": dict(deployed),
        }
        return name

    # Dispatch

    def handle(self, method: str, raw_path: str, headers, body: bytes):
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        request = RecordedRequest(method, path, parse_qs(parts.query), body)
        with self.lock:
            self.requests.append(request)
            for index, (fail_method, pattern, status, reason) in enumerate(self.failures):
                if fail_method == method and pattern.fullmatch(path):
                    del self.failures[index]
                    return status, {"error": {"code": status, "message": f"fake {reason} for {path}", "status": reason}}
            for route_method, pattern, handler in self.routes:
                match = re.fullmatch(pattern, path)
                if route_method == method and match:
                    return handler(request, headers, **match.groupdict())
            self.unhandled.append(f"{method} {path}")
            return 404, {"error": {"code": 404, "message": f"fake has no route for {method} {path}", "status": "NOT_FOUND"}}

    @staticmethod
    def operation(response_type: str, response: dict) -> tuple[int, dict]:
        return 200, {
            "name": f"projects/{PROJECT}/locations/{REGION}/operations/1",
            "done": True,
            "response": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{response_type}", **response},
        }

    @staticmethod
    def matches_filter(resource: dict, filter_text: str) -> bool:
        for field_name, value in re.findall(r'([\w.]+)\s*=\s*"([^"]*)"', filter_text):
            if field_name == "display_name" and resource.get("displayName") != value:
                return False
            if field_name.startswith("labels.") and resource.get("labels", {}).get(field_name[len("labels."):]) != value:
                return False
        return True

    # Cloud Storage

    def get_bucket(self, request, headers, bucket):
        if bucket not in self.buckets:
            return 404, {"error": {"code": 404, "message": f"bucket {bucket} not found", "status": "NOT_FOUND"}}
        return 200, {"kind": "storage#bucket", "name": bucket, "location": "EU"}

    def upload_object(self, request, headers, bucket):
        assert request.query.get("uploadType") == ["multipart"], request.query
        boundary = re.search(r'boundary="?([^";]+)"?', headers["Content-Type"]).group(1).encode()
        parts = [part for part in request.body.split(b"--" + boundary) if part not in (b"", b"--", b"--\r\n")]
        documents = []
        for part in parts:
            _, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            documents.append(content.removesuffix(b"\r\n"))
        metadata = json.loads(documents[0])
        self.objects[(bucket, metadata["name"])] = documents[1]
        return 200, {
            "kind": "storage#object", "bucket": bucket, "name": metadata["name"], "generation": "1",
            "size": str(len(documents[1])), "contentType": metadata.get("contentType", "application/octet-stream"),
        }

    # Vertex AI Model Registry

    def default_version(self, model_id: str) -> dict:
        versions = self.models[model_id]
        return next((version for version in versions if "default" in version["versionAliases"]), versions[-1])

    def list_models(self, request, headers):
        filter_text = request.query.get("filter", [""])[0]
        models = [self.default_version(model_id) for model_id in self.models]
        return 200, {"models": [model for model in models if self.matches_filter(model, filter_text)]}

    def list_model_versions(self, request, headers, model):
        filter_text = request.query.get("filter", [""])[0]
        return 200, {"models": [version for version in self.models[model] if self.matches_filter(version, filter_text)]}

    def get_model(self, request, headers, model, version=None):
        if model not in self.models:
            return 404, {"error": {"code": 404, "message": f"model {model} not found", "status": "NOT_FOUND"}}
        if version is None:
            return 200, self.default_version(model)
        found = [entry for entry in self.models[model] if version in (entry["versionId"], *entry["versionAliases"])]
        return (200, found[0]) if found else (404, {"error": {"code": 404, "message": "no such version", "status": "NOT_FOUND"}})

    def upload_model(self, request, headers):
        body = request.json()
        resource = dict(body["model"])
        if body.get("parentModel"):
            model_id = body["parentModel"].rsplit("/", 1)[1]
            versions = self.models[model_id]
            # An alias names one version at a time, so a new version takes it from the older ones.
            for older in versions:
                older["versionAliases"] = [alias for alias in older["versionAliases"] if alias not in resource.get("versionAliases", [])]
        else:
            model_id = self.new_id()
            versions = self.models[model_id] = []
        resource["name"] = f"projects/{PROJECT}/locations/{REGION}/models/{model_id}"
        resource["versionId"] = str(len(versions) + 1)
        # Vertex AI sets this output field for models with a serving container, and Model.deploy reads it.
        resource["supportedDeploymentResourcesTypes"] = ["DEDICATED_RESOURCES"]
        versions.append(resource)
        return self.operation("UploadModelResponse", {"model": resource["name"], "modelVersionId": resource["versionId"]})

    # Vertex AI endpoints and jobs

    def list_endpoints(self, request, headers):
        filter_text = request.query.get("filter", [""])[0]
        return 200, {"endpoints": [endpoint for endpoint in self.endpoints.values() if self.matches_filter(endpoint, filter_text)]}

    def create_endpoint(self, request, headers):
        endpoint_id = self.new_id()
        resource = {**request.json(), "name": f"projects/{PROJECT}/locations/{REGION}/endpoints/{endpoint_id}"}
        self.endpoints[endpoint_id] = resource
        return self.operation("Endpoint", resource)

    def get_endpoint(self, request, headers, endpoint):
        return 200, self.endpoints[endpoint]

    def deploy_model(self, request, headers, endpoint):
        body = request.json()
        resource = self.endpoints[endpoint]
        deployed_id = self.new_id()
        model_name, _, version_id = body["deployedModel"]["model"].partition("@")
        deployed = {**body["deployedModel"], "id": deployed_id, "model": model_name, "modelVersionId": version_id or "1"}
        resource.setdefault("deployedModels", []).append(deployed)
        resource["trafficSplit"] = {
            (deployed_id if key == "0" else key): share for key, share in body.get("trafficSplit", {}).items()
        }
        return self.operation("DeployModelResponse", {"deployedModel": deployed})

    def predict(self, request, headers, endpoint):
        instances = request.json()["instances"]
        return 200, {"predictions": self.predictor(instances), "deployedModelId": "1"}

    def create_batch_prediction_job(self, request, headers):
        job_id = self.new_id()
        resource = {**request.json(), "name": f"projects/{PROJECT}/locations/{REGION}/batchPredictionJobs/{job_id}", "state": "JOB_STATE_PENDING"}
        self.batch_jobs[job_id] = resource
        return 200, resource

    def get_batch_prediction_job(self, request, headers, job):
        return 200, self.batch_jobs[job]


def handler_class(fake: FakeGoogleCloud):
    class Handler(BaseHTTPRequestHandler):
        def respond(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, document = fake.handle(self.command, self.path, self.headers, body)
            data = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = respond

        def log_message(self, format, *args):
            pass

    return Handler


LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any name lookup or connection to a host other than loopback, so a missed redirect cannot reach Google."""
    import socket

    original_connect = socket.socket.connect
    original_getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK_HOSTS:
            raise AssertionError(f"test tried to connect to {address}")
        return original_connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK_HOSTS and host is not None:
            raise AssertionError(f"test tried to resolve {host}")
        return original_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture
def google_cloud(monkeypatch):
    """Start the fake on a free 127.0.0.1 port and keep google-auth away from the metadata server and real credentials."""
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    for variable in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "API_ENDPOINT_OVERRIDE"):
        monkeypatch.delenv(variable, raising=False)

    from google.cloud.aiplatform import initializer

    saved_config = dict(vars(initializer.global_config))
    fake = FakeGoogleCloud()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class(fake))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        vars(initializer.global_config).clear()
        vars(initializer.global_config).update(saved_config)
    assert not thread.is_alive()
    assert fake.unhandled == []


@pytest.fixture
def credentials():
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def make_settings(fake: FakeGoogleCloud, **overrides) -> VertexSettings:
    values = dict(
        project=PROJECT,
        region=REGION,
        staging_bucket=f"gs://{BUCKET}",
        model_display_name="churn-model",
        labels={"team": "retention"},
        version_aliases=["champion"],
        api_endpoint=fake.url,
        storage_api_endpoint=fake.url,
        api_transport="rest",
        request_timeout_seconds=10,
        retry_delay_seconds=0.01,
    )
    values.update(overrides)
    return VertexSettings(**values)


@pytest.fixture
def trained(tmp_path) -> TrainedModel:
    artifact_dir = tmp_path / "candidates" / VERSION
    for relative, content in SAVED_MODEL_FILES.items():
        path = artifact_dir / "saved_model" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (artifact_dir / "saved_model" / "assets").mkdir()
    return TrainedModel(
        version=VERSION, artifact_dir=str(artifact_dir), feature_columns=["a", "b", "c"], feature_schema_hash="hash",
        training_rows=10, validation_rows=5, evaluation_rows=5, evaluation_cutoff="2026-01-01",
        metrics={"roc_auc": 0.75}, baseline_metrics={},
    )


def deploy(fake, trained, credentials, **overrides) -> tuple[str, list[str]]:
    messages = []
    artifact_uri = VertexDeployer(make_settings(fake, **overrides), credentials=credentials).deploy(trained, messages.append)
    return artifact_uri, messages


# Settings


def test_settings_read_every_variable():
    environ = {
        "CHURN_VERTEX_PROJECT": PROJECT,
        "CHURN_VERTEX_REGION": "us-central1",
        "CHURN_VERTEX_STAGING_BUCKET": "gs://churn-staging/vertex",
        "CHURN_VERTEX_MODEL_DISPLAY_NAME": "churn",
        "CHURN_VERTEX_SERVING_CONTAINER_IMAGE_URI": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-14:latest",
        "CHURN_VERTEX_LABELS": "team=retention, env=prod",
        "CHURN_VERTEX_VERSION_ALIASES": "champion,latest",
        "CHURN_VERTEX_ENDPOINT_DISPLAY_NAME": "churn-endpoint",
        "CHURN_VERTEX_MACHINE_TYPE": "n1-standard-4",
        "CHURN_VERTEX_MIN_REPLICA_COUNT": "2",
        "CHURN_VERTEX_MAX_REPLICA_COUNT": "3",
        "CHURN_VERTEX_TRAFFIC_PERCENTAGE": "10",
        "CHURN_VERTEX_REQUEST_TIMEOUT_SECONDS": "30",
        "CHURN_VERTEX_RETRIES": "5",
        "CHURN_VERTEX_RETRY_DELAY_SECONDS": "0.5",
        "CHURN_VERTEX_API_ENDPOINT": "europe-west4-aiplatform.googleapis.com",
        "CHURN_VERTEX_STORAGE_API_ENDPOINT": "https://storage.example.internal",
        "CHURN_VERTEX_API_TRANSPORT": "rest",
    }

    settings = VertexSettings.from_environment(environ)

    assert settings.project == PROJECT
    assert settings.region == "us-central1"
    assert settings.bucket_name == "churn-staging"
    assert settings.artifact_uri("v1") == "gs://churn-staging/vertex/models/v1/"
    assert settings.model_display_name == "churn"
    assert settings.serving_container_image_uri == "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-14:latest"
    assert settings.labels == {"team": "retention", "env": "prod"}
    assert settings.version_aliases == ["champion", "latest"]
    assert settings.endpoint_display_name == "churn-endpoint"
    assert settings.machine_type == "n1-standard-4"
    assert (settings.min_replica_count, settings.max_replica_count) == (2, 3)
    assert settings.traffic_percentage == 10
    assert settings.request_timeout_seconds == 30.0
    assert (settings.retries, settings.retry_delay_seconds) == (5, 0.5)
    assert settings.api_endpoint == "europe-west4-aiplatform.googleapis.com"
    assert settings.storage_api_endpoint == "https://storage.example.internal"
    assert settings.api_transport == "rest"


def test_default_image_follows_region():
    minimal = {"CHURN_VERTEX_PROJECT": PROJECT, "CHURN_VERTEX_STAGING_BUCKET": "gs://b"}
    cases = {
        "europe-west4": "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "asia-northeast1": "asia-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "australia-southeast1": "asia-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "us-central1": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "northamerica-northeast1": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
    }
    for region, image in cases.items():
        settings = VertexSettings.from_environment({**minimal, "CHURN_VERTEX_REGION": region})
        assert settings.serving_container_image_uri == image, region
    assert settings.endpoint_display_name is None
    assert settings.traffic_percentage == 100


def test_settings_missing_variable_is_named():
    environ = {"CHURN_VERTEX_PROJECT": PROJECT, "CHURN_VERTEX_REGION": REGION}
    with pytest.raises(ValueError, match="CHURN_VERTEX_STAGING_BUCKET is missing"):
        VertexSettings.from_environment(environ)


def test_settings_invalid_values_are_named():
    base = {"CHURN_VERTEX_PROJECT": PROJECT, "CHURN_VERTEX_REGION": REGION, "CHURN_VERTEX_STAGING_BUCKET": "gs://b"}
    with pytest.raises(ValueError, match="CHURN_VERTEX_RETRIES='many' is invalid"):
        VertexSettings.from_environment({**base, "CHURN_VERTEX_RETRIES": "many"})
    with pytest.raises(ValueError, match="CHURN_VERTEX_LABELS='team' is invalid"):
        VertexSettings.from_environment({**base, "CHURN_VERTEX_LABELS": "team"})
    with pytest.raises(ValueError, match="Traffic percentage 150 is invalid"):
        VertexSettings.from_environment({**base, "CHURN_VERTEX_TRAFFIC_PERCENTAGE": "150"})
    with pytest.raises(ValueError, match="staging bucket 'churn-staging' is invalid"):
        VertexSettings.from_environment({**base, "CHURN_VERTEX_STAGING_BUCKET": "churn-staging"})


# Deployment


def test_deploy_uploads_saved_model_files(google_cloud, trained, credentials):
    artifact_uri, messages = deploy(google_cloud, trained, credentials)

    assert artifact_uri == f"gs://{BUCKET}/models/{VERSION}/"
    expected = {(BUCKET, f"models/{VERSION}/{relative}"): content for relative, content in SAVED_MODEL_FILES.items()}
    assert google_cloud.objects == expected
    assert len(google_cloud.sent("POST", r"/upload/storage/v1/b/churn-staging/o")) == len(SAVED_MODEL_FILES)
    assert google_cloud.sent("GET", LOCATION + r"/endpoints.*") == []
    assert any(f"Uploaded 4 files to {artifact_uri}" in message for message in messages)


def test_deploy_registers_image_labels_aliases(google_cloud, trained, credentials):
    deploy(google_cloud, trained, credentials)

    uploads = google_cloud.sent("POST", LOCATION + r"/models:upload")
    assert len(uploads) == 1
    body = uploads[0].json()
    model = body["model"]
    assert model["displayName"] == "churn-model"
    assert model["artifactUri"] == f"gs://{BUCKET}/models/{VERSION}/"
    assert model["containerSpec"]["imageUri"] == "europe-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    assert model["labels"] == {"team": "retention", MODEL_VERSION_LABEL: VERSION}
    assert set(model["versionAliases"]) == {"champion", "default"}
    assert "parentModel" not in body


def test_deploy_adds_version_to_existing_model(google_cloud, trained, credentials):
    parent = google_cloud.add_model("churn-model")

    deploy(google_cloud, trained, credentials)

    body = google_cloud.sent("POST", LOCATION + r"/models:upload")[0].json()
    assert body["parentModel"] == parent
    model_id = parent.rsplit("/", 1)[1]
    assert [version["versionId"] for version in google_cloud.models[model_id]] == ["1", "2"]
    assert google_cloud.models[model_id][0]["versionAliases"] == []


def test_deploy_same_version_twice_uploads_once(google_cloud, trained, credentials):
    first_uri, _ = deploy(google_cloud, trained, credentials)
    second_uri, messages = deploy(google_cloud, trained, credentials)

    assert second_uri == first_uri
    assert len(google_cloud.sent("POST", LOCATION + r"/models:upload")) == 1
    assert len(google_cloud.sent("POST", r"/upload/storage/v1/b/churn-staging/o")) == len(SAVED_MODEL_FILES)
    assert any("already registered" in message for message in messages)


def test_deploy_creates_endpoint_with_all_traffic(google_cloud, trained, credentials):
    deploy(
        google_cloud, trained, credentials, endpoint_display_name="churn-endpoint", traffic_percentage=25,
        machine_type="n1-standard-4", min_replica_count=1, max_replica_count=3,
    )

    created = google_cloud.sent("POST", LOCATION + r"/endpoints")
    assert len(created) == 1
    assert created[0].json()["displayName"] == "churn-endpoint"
    assert created[0].json()["labels"] == {"team": "retention"}
    deploy_requests = google_cloud.sent("POST", LOCATION + r"/endpoints/\d+:deployModel")
    assert len(deploy_requests) == 1
    body = deploy_requests[0].json()
    resources = body["deployedModel"]["dedicatedResources"]
    assert resources["machineSpec"]["machineType"] == "n1-standard-4"
    assert (resources["minReplicaCount"], resources["maxReplicaCount"]) == (1, 3)
    assert body["deployedModel"]["model"].endswith("@1")
    # The first model on an endpoint must take all traffic, whatever traffic_percentage is set to.
    assert body["trafficSplit"] == {"0": 100}


def test_deploy_splits_traffic_with_serving_version(google_cloud, trained, credentials):
    google_cloud.add_model("churn-model")
    endpoint = google_cloud.add_endpoint("churn-endpoint", {"111": 100})

    deploy(google_cloud, trained, credentials, endpoint_display_name="churn-endpoint", traffic_percentage=20)

    assert google_cloud.sent("POST", LOCATION + r"/endpoints") == []
    body = google_cloud.sent("POST", f"/v1/{endpoint}:deployModel")[0].json()
    assert body["trafficSplit"] == {"111": 80, "0": 20}
    assert body["deployedModel"]["model"].endswith("@2")


def test_deploy_skips_endpoint_already_serving_version(google_cloud, trained, credentials):
    deploy(google_cloud, trained, credentials, endpoint_display_name="churn-endpoint")
    _, messages = deploy(google_cloud, trained, credentials, endpoint_display_name="churn-endpoint")

    assert len(google_cloud.sent("POST", LOCATION + r"/endpoints/\d+:deployModel")) == 1
    assert any("already deployed" in message for message in messages)


def test_deploy_retries_transient_upload_error(google_cloud, trained, credentials):
    google_cloud.fail_next("POST", r"/upload/storage/v1/b/churn-staging/o", 503, "UNAVAILABLE")

    deploy(google_cloud, trained, credentials)

    assert len(google_cloud.objects) == len(SAVED_MODEL_FILES)
    assert len(google_cloud.sent("POST", r"/upload/storage/v1/b/churn-staging/o")) == len(SAVED_MODEL_FILES) + 1


def test_deploy_upload_failure_names_object(google_cloud, trained, credentials):
    google_cloud.fail_next("POST", r"/upload/storage/v1/b/churn-staging/o", 403, "PERMISSION_DENIED")

    with pytest.raises(DeploymentError) as raised:
        deploy(google_cloud, trained, credentials)

    message = str(raised.value)
    assert f"gs://{BUCKET}/models/{VERSION}/" in message
    assert "PERMISSION_DENIED" in message or "403" in message
    assert google_cloud.sent("POST", LOCATION + r"/models:upload") == []


def test_deploy_registration_failure_names_model(google_cloud, trained, credentials):
    google_cloud.fail_next("POST", LOCATION + r"/models:upload", 400, "INVALID_ARGUMENT")

    with pytest.raises(DeploymentError, match="Vertex AI model 'churn-model'"):
        deploy(google_cloud, trained, credentials)


def test_deploy_endpoint_failure_names_endpoint(google_cloud, trained, credentials):
    google_cloud.fail_next("POST", LOCATION + r"/endpoints/\d+:deployModel", 400, "FAILED_PRECONDITION")

    with pytest.raises(DeploymentError, match="endpoint 'churn-endpoint'"):
        deploy(google_cloud, trained, credentials, endpoint_display_name="churn-endpoint")


def test_deploy_rejects_duplicate_model_names(google_cloud, trained, credentials):
    google_cloud.add_model("churn-model")
    google_cloud.add_model("churn-model")

    with pytest.raises(DeploymentError, match="2 models named 'churn-model'"):
        deploy(google_cloud, trained, credentials)
    assert google_cloud.objects == {}


def test_deploy_missing_saved_model_fails_early(google_cloud, trained, credentials):
    (trained.saved_model_dir / "saved_model.pb").unlink()

    with pytest.raises(DeploymentError, match="saved_model.pb is missing"):
        deploy(google_cloud, trained, credentials)
    assert google_cloud.requests == []


# Scoring helpers


def test_feature_instances_use_one_element_lists():
    features = {"recency": np.array([[3.0], [5.5]]), "trend": np.array([-1.0, 2.0])}

    assert feature_instances(features) == [{"recency": [3.0], "trend": [-1.0]}, {"recency": [5.5], "trend": [2.0]}]
    with pytest.raises(ValueError, match="Feature trend contains NaN"):
        feature_instances({"trend": np.array([np.nan])})
    with pytest.raises(ValueError, match="different row counts"):
        feature_instances({"a": np.zeros(2), "b": np.zeros(3)})


def test_predict_online_sends_chunks_in_order(google_cloud, credentials):
    from google.cloud import aiplatform

    endpoint_name = google_cloud.add_endpoint("churn-endpoint", {"111": 100})
    features = {"a": np.arange(5, dtype=np.float64), "b": np.full(5, 10.0)}
    initialise_vertex(make_settings(google_cloud), credentials)
    endpoint = aiplatform.Endpoint(endpoint_name, credentials=credentials)

    probabilities = predict_online(endpoint, feature_instances(features), chunk_size=2, retries=0)

    np.testing.assert_allclose(probabilities, [10.0, 11.0, 12.0, 13.0, 14.0])
    requests = google_cloud.sent("POST", f"/v1/{endpoint_name}:predict")
    assert [len(request.json()["instances"]) for request in requests] == [2, 2, 1]
    assert requests[0].json()["instances"][0] == {"a": [0.0], "b": [10.0]}


def test_start_batch_prediction_sends_jsonl_job(google_cloud, credentials):
    settings = make_settings(google_cloud, machine_type="n1-standard-8", min_replica_count=2, max_replica_count=4)
    model_name = f"projects/{PROJECT}/locations/{REGION}/models/1001@3"

    job = start_batch_prediction(
        settings, model_name, f"gs://{BUCKET}/scoring/instances.jsonl", f"gs://{BUCKET}/scoring/output",
        "churn-scoring", credentials=credentials,
    )

    requests = google_cloud.sent("POST", LOCATION + r"/batchPredictionJobs")
    assert len(requests) == 1
    body = requests[0].json()
    assert body["model"] == model_name
    assert body["inputConfig"] == {"instancesFormat": "jsonl", "gcsSource": {"uris": [f"gs://{BUCKET}/scoring/instances.jsonl"]}}
    assert body["outputConfig"] == {
        "predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": f"gs://{BUCKET}/scoring/output"},
    }
    assert body["instanceConfig"] == {"keyField": "user_id"}
    assert body["dedicatedResources"]["machineSpec"]["machineType"] == "n1-standard-8"
    assert (body["dedicatedResources"]["startingReplicaCount"], body["dedicatedResources"]["maxReplicaCount"]) == (2, 4)
    assert body["labels"] == {"team": "retention"}
    assert job.resource_name == next(iter(google_cloud.batch_jobs.values()))["name"]


def test_read_batch_predictions_maps_keys():
    lines = ['{"key": 7, "prediction": [0.25]}', "", '{"key": 9, "prediction": 0.5}']

    assert read_batch_predictions(lines) == {7: 0.25, 9: 0.5}


# A real SavedModel


@pytest.fixture(scope="module")
def exported_model(tmp_path_factory):
    """Train the project's Keras model for one epoch on tiny random data and export it as the pipeline does."""
    from churn_assets.training.model import Hyperparameters, build_model, set_seeds

    set_seeds()
    columns = ["recency_days", "order_count", "spend_trend"]
    rng = np.random.default_rng(7)
    row_count = 64
    features = {
        "recency_days": rng.gamma(2.0, 30.0, size=(row_count, 1)).astype(np.float32),
        "order_count": rng.integers(1, 20, size=(row_count, 1)).astype(np.float32),
        "spend_trend": rng.normal(0.0, 50.0, size=(row_count, 1)).astype(np.float32),
    }
    labels = rng.integers(0, 2, size=row_count).astype(np.float32)
    model = build_model(columns, features, Hyperparameters(hidden_units=(4,), dropout=0.0, epochs=1, batch_size=16))
    model.fit(features, labels, epochs=1, batch_size=16, verbose=0)
    artifact_dir = tmp_path_factory.mktemp("vertex_model")
    model.export(str(artifact_dir / "saved_model"), format="tf_saved_model", verbose=False)
    return artifact_dir, features


def read_instances(path: Path) -> tuple[list, list[dict]]:
    user_ids, instances = [], []
    for line in path.read_text().splitlines():
        instance = json.loads(line)
        user_ids.append(instance.pop("user_id"))
        instances.append(instance)
    return user_ids, instances


def test_instances_file_scores_like_local_model(exported_model, tmp_path):
    from churn_assets.scoring.saved_model import SavedModelScorer

    artifact_dir, features = exported_model
    scorer = SavedModelScorer(artifact_dir)
    user_ids = np.arange(100, 100 + len(features["recency_days"]), dtype=np.uint32)
    path = tmp_path / "instances.jsonl"

    written = write_instances_jsonl(features, user_ids, path)

    read_user_ids, instances = read_instances(path)
    assert written == len(user_ids)
    assert read_user_ids == user_ids.tolist()
    read_features = {name: np.array([instance[name] for instance in instances], dtype=np.float32) for name in features}
    assert read_features["recency_days"].shape == (len(user_ids), 1)
    assert np.allclose(scorer.predict(read_features), scorer.predict(features))


def test_online_scores_match_local_model(exported_model, tmp_path, google_cloud, credentials):
    """Serve the SavedModel behind the fake endpoint, stacking instances into a batch as TensorFlow Serving does."""
    import tensorflow as tf
    from google.cloud import aiplatform

    from churn_assets.scoring.saved_model import SavedModelScorer

    artifact_dir, features = exported_model
    serve = tf.saved_model.load(str(artifact_dir / "saved_model")).signatures["serving_default"]

    def serving_predictor(instances):
        # Stacking [x] values gives the (batch, 1) shape the signature requires. Bare numbers would fail here.
        inputs = {name: tf.constant([instance[name] for instance in instances], dtype=tf.float32) for name in instances[0]}
        outputs = serve(**inputs)
        return np.asarray(next(iter(outputs.values()))).tolist()

    google_cloud.predictor = serving_predictor
    endpoint_name = google_cloud.add_endpoint("churn-endpoint", {"111": 100})
    path = tmp_path / "instances.jsonl"
    write_instances_jsonl(features, list(range(len(features["recency_days"]))), path)
    _, instances = read_instances(path)
    initialise_vertex(make_settings(google_cloud), credentials)
    endpoint = aiplatform.Endpoint(endpoint_name, credentials=credentials)

    probabilities = predict_online(endpoint, instances, chunk_size=10, retries=0)

    assert len(google_cloud.sent("POST", f"/v1/{endpoint_name}:predict")) == 7
    assert np.allclose(probabilities, SavedModelScorer(artifact_dir).predict(features))
