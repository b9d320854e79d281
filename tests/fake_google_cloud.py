"""A fake Google Cloud on 127.0.0.1 for the Vertex AI tests.

It serves the Cloud Storage JSON API and the Vertex AI REST API, so the real google-cloud-storage
and google-cloud-aiplatform clients build, send and parse every request. Batch prediction jobs run
the fake's predictor over the instances files they were given, as Vertex AI would.
"""

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from churn_assets.defs.deployment.vertex import VertexSettings

PROJECT = "churn-test"
REGION = "europe-west4"
BUCKET = "churn-staging"
LOCATION = f"/v1/projects/{PROJECT}/locations/{REGION}"
VERSION = "churn-20261204-120000-abcdef12"


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
        # Each batch job reports these states on successive reads, and the last one repeats.
        self.batch_job_states = ["JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"]
        # The content of each job's errors file. Vertex AI writes one line per failed instance.
        self.batch_errors = ""

        self.routes = [
            ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)", self.get_bucket),
            ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)/o", self.list_objects),
            ("GET", r"/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>.+)", self.get_object),
            ("GET", r"/download/storage/v1/b/(?P<bucket>[^/]+)/o/(?P<name>.+)", self.download_object),
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
            ("GET", LOCATION + r"/batchPredictionJobs/(?P<job>[^/:]+)", self.get_batch_prediction_job),
            ("POST", LOCATION + r"/batchPredictionJobs/(?P<job>[^/:]+):cancel", self.cancel_batch_prediction_job),
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

    def object_resource(self, bucket: str, name: str) -> dict:
        return {
            "kind": "storage#object", "bucket": bucket, "name": name, "generation": "1",
            "size": str(len(self.objects[(bucket, name)])), "contentType": "application/octet-stream",
        }

    def list_objects(self, request, headers, bucket):
        prefix = request.query.get("prefix", [""])[0]
        names = sorted(name for stored_bucket, name in self.objects if stored_bucket == bucket and name.startswith(prefix))
        return 200, {"kind": "storage#objects", "items": [self.object_resource(bucket, name) for name in names]}

    def get_object(self, request, headers, bucket, name):
        if (bucket, name) not in self.objects:
            return 404, {"error": {"code": 404, "message": f"object {name} not found", "status": "NOT_FOUND"}}
        return 200, self.object_resource(bucket, name)

    def download_object(self, request, headers, bucket, name):
        content = self.objects[(bucket, name)]
        byte_range = re.fullmatch(r"bytes=(\d+)-(\d*)", headers.get("Range") or "")
        if byte_range is None:
            return 200, content
        start = int(byte_range.group(1))
        end = int(byte_range.group(2)) if byte_range.group(2) else len(content) - 1
        return 206, content[start:end + 1]

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
        return 200, self.object_resource(bucket, metadata["name"])

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
        resource = self.batch_jobs[job]
        if resource["state"] != "JOB_STATE_CANCELLED":
            reads = resource.setdefault("reads", 0)
            resource["reads"] = reads + 1
            resource["state"] = self.batch_job_states[min(reads, len(self.batch_job_states) - 1)]
            if resource["state"] == "JOB_STATE_SUCCEEDED" and "outputInfo" not in resource:
                self.run_batch_job(resource)
        return 200, {key: value for key, value in resource.items() if key != "reads"}

    def cancel_batch_prediction_job(self, request, headers, job):
        self.batch_jobs[job]["state"] = "JOB_STATE_CANCELLED"
        return 200, {}

    def run_batch_job(self, resource: dict) -> None:
        """Predict every instance of the job's input files and write one output file, as Vertex AI does."""
        key_field = resource["instanceConfig"]["keyField"]
        output_lines = []
        for uri in resource["inputConfig"]["gcsSource"]["uris"]:
            bucket, _, name = uri.removeprefix("gs://").partition("/")
            records = [json.loads(line) for line in self.objects[(bucket, name)].decode().splitlines() if line.strip()]
            keys = [record.pop(key_field) for record in records]
            for key, prediction in zip(keys, self.predictor(records)):
                output_lines.append(json.dumps({"key": key, "prediction": prediction}))
        prefix = resource["outputConfig"]["gcsDestination"]["outputUriPrefix"]
        output_directory = f"{prefix}/prediction-churn-model-2026_12_04T00_00_00_000Z"
        bucket, _, folder = output_directory.removeprefix("gs://").partition("/")
        self.objects[(bucket, f"{folder}/predictions_00001.jsonl")] = ("\n".join(output_lines) + "\n").encode()
        self.objects[(bucket, f"{folder}/errors_00001.jsonl")] = self.batch_errors.encode()
        resource["outputInfo"] = {"gcsOutputDirectory": output_directory}
        resource["completionStats"] = {"successfulCount": str(len(output_lines)), "failedCount": "0"}

    def objects_under(self, prefix: str) -> list[str]:
        return sorted(name for _, name in self.objects if name.startswith(prefix))


def handler_class(fake: FakeGoogleCloud):
    class Handler(BaseHTTPRequestHandler):
        def respond(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            status, document = fake.handle(self.command, self.path, self.headers, body)
            is_bytes = isinstance(document, bytes)
            data = document if is_bytes else json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream" if is_bytes else "application/json")
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


