"""VertexDeployer against a fake Google Cloud on 127.0.0.1: what it uploads, registers and deploys."""

import pytest

from churn_assets.defs.deployment.deployers import DeploymentError
from churn_assets.defs.deployment.vertex import MODEL_VERSION_LABEL, VertexDeployer, VertexSettings
from churn_assets.defs.training.artifacts import TrainedModel
from fake_google_cloud import (  # noqa: F401
    BUCKET, LOCATION, PROJECT, REGION, VERSION, credentials, google_cloud, loopback_only, make_settings,
)

SAVED_MODEL_FILES = {
    "saved_model.pb": b"graph",
    "fingerprint.pb": b"fingerprint",
    "variables/variables.index": b"index",
    "variables/variables.data-00000-of-00001": b"\x00\x01weights\r\n",
}



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


