"""Scoring with a Vertex AI champion against a fake Google Cloud on 127.0.0.1: instances files, batch
jobs, online prediction, and the churn_scores asset choosing between them."""

import json
from pathlib import Path

import numpy as np
import pytest

from churn_assets.defs.deployment.vertex import initialise_vertex
from churn_assets.defs.scoring.vertex_scoring import (
    VertexScoringError,
    choose_mode,
    feature_instances,
    iter_output_lines,
    predict_online,
    read_batch_predictions,
    start_batch_prediction,
    wait_for_batch_job,
    write_instances_jsonl,
)
from fake_google_cloud import (  # noqa: F401
    BUCKET, LOCATION, PROJECT, REGION, credentials, google_cloud, loopback_only, make_settings,
)
from test_model_gate import training_client  # noqa: F401
from test_scoring import latest_scores, score, scoring_warehouse  # noqa: F401

# Instances, jobs and endpoints


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

    job_name = start_batch_prediction(
        settings, model_name, [f"gs://{BUCKET}/scoring/part-0.jsonl", f"gs://{BUCKET}/scoring/part-1.jsonl"],
        f"gs://{BUCKET}/scoring/output", "churn-scoring", credentials=credentials,
    )

    requests = google_cloud.sent("POST", LOCATION + r"/batchPredictionJobs")
    assert len(requests) == 1
    body = requests[0].json()
    assert body["model"] == model_name
    assert body["inputConfig"] == {
        "instancesFormat": "jsonl", "gcsSource": {"uris": [f"gs://{BUCKET}/scoring/part-0.jsonl", f"gs://{BUCKET}/scoring/part-1.jsonl"]},
    }
    assert body["outputConfig"] == {
        "predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": f"gs://{BUCKET}/scoring/output"},
    }
    assert body["instanceConfig"] == {"keyField": "user_id"}
    assert body["dedicatedResources"]["machineSpec"]["machineType"] == "n1-standard-8"
    assert (body["dedicatedResources"]["startingReplicaCount"], body["dedicatedResources"]["maxReplicaCount"]) == (2, 4)
    assert body["labels"] == {"team": "retention"}
    assert job_name == next(iter(google_cloud.batch_jobs.values()))["name"]


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


def serving_predictor(saved_model_dir: Path):
    """Return a predictor that serves the SavedModel as TensorFlow Serving does, stacking instances into a batch."""
    import tensorflow as tf

    serve = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]

    def predict(instances):
        # Stacking [x] values gives the (batch, 1) shape the signature requires. Bare numbers would fail here.
        inputs = {name: tf.constant([instance[name] for instance in instances], dtype=tf.float32) for name in instances[0]}
        outputs = serve(**inputs)
        return np.asarray(next(iter(outputs.values()))).tolist()

    return predict


def test_online_scores_match_local_model(exported_model, tmp_path, google_cloud, credentials):
    from google.cloud import aiplatform

    from churn_assets.scoring.saved_model import SavedModelScorer

    artifact_dir, features = exported_model
    google_cloud.predictor = serving_predictor(artifact_dir / "saved_model")
    endpoint_name = google_cloud.add_endpoint("churn-endpoint", {"111": 100})
    path = tmp_path / "instances.jsonl"
    write_instances_jsonl(features, list(range(len(features["recency_days"]))), path)
    _, instances = read_instances(path)
    initialise_vertex(make_settings(google_cloud), credentials)
    endpoint = aiplatform.Endpoint(endpoint_name, credentials=credentials)

    probabilities = predict_online(endpoint, instances, chunk_size=10, retries=0)

    assert len(google_cloud.sent("POST", f"/v1/{endpoint_name}:predict")) == 7
    assert np.allclose(probabilities, SavedModelScorer(artifact_dir).predict(features))


def start_job_over(google_cloud, credentials, lines: list[dict], **overrides) -> tuple:
    settings = make_settings(google_cloud, batch_poll_seconds=0.01, **overrides)
    google_cloud.objects[(BUCKET, "scoring/run/instances/part-00000.jsonl")] = "".join(json.dumps(line) + "\n" for line in lines).encode()
    job_name = start_batch_prediction(
        settings, f"projects/{PROJECT}/locations/{REGION}/models/1001@1", [f"gs://{BUCKET}/scoring/run/instances/part-00000.jsonl"],
        f"gs://{BUCKET}/scoring/run/predictions", "churn-scoring-run", credentials=credentials,
    )
    return settings, job_name


def test_batch_job_outputs_are_read_back(google_cloud, credentials):
    settings, job_name = start_job_over(google_cloud, credentials, [{"user_id": "u1", "a": [0.25]}, {"user_id": "u2", "a": [0.5]}])
    messages = []

    job = wait_for_batch_job(settings, job_name, credentials, messages.append)
    lines = list(iter_output_lines(settings, job.output_info.gcs_output_directory, credentials))

    assert read_batch_predictions(lines) == {"u1": 0.25, "u2": 0.5}
    assert messages == [f"Batch prediction job {job_name} is JOB_STATE_RUNNING", f"Batch prediction job {job_name} is JOB_STATE_SUCCEEDED"]


def test_batch_job_failure_names_job(google_cloud, credentials):
    google_cloud.batch_job_states = ["JOB_STATE_FAILED"]
    settings, job_name = start_job_over(google_cloud, credentials, [{"user_id": "u1", "a": [0.25]}])

    with pytest.raises(VertexScoringError, match=f"{job_name} ended as JOB_STATE_FAILED"):
        wait_for_batch_job(settings, job_name, credentials, print)


def test_batch_job_past_timeout_is_cancelled(google_cloud, credentials):
    google_cloud.batch_job_states = ["JOB_STATE_RUNNING"]
    settings, job_name = start_job_over(google_cloud, credentials, [{"user_id": "u1", "a": [0.25]}], batch_timeout_seconds=60)
    now = [0.0]

    def advance(seconds):
        now[0] += 30

    with pytest.raises(VertexScoringError, match="did not finish within 60 s and was cancelled"):
        wait_for_batch_job(settings, job_name, credentials, print, sleep=advance, clock=lambda: now[0])

    assert len(google_cloud.sent("POST", f"/v1/{job_name}:cancel")) == 1
    assert next(iter(google_cloud.batch_jobs.values()))["state"] == "JOB_STATE_CANCELLED"


def test_errors_file_fails_the_read(google_cloud, credentials):
    google_cloud.batch_errors = '{"instance": {"a": ["x"]}, "error": {"code": 3, "message": "bad input"}}\n'
    settings, job_name = start_job_over(google_cloud, credentials, [{"user_id": "u1", "a": [0.25]}])
    job = wait_for_batch_job(settings, job_name, credentials, print)

    with pytest.raises(VertexScoringError, match="reports failed instances: .*bad input"):
        list(iter_output_lines(settings, job.output_info.gcs_output_directory, credentials))


def test_choose_mode(google_cloud):
    endpoint = object()

    assert choose_mode(make_settings(google_cloud), 10_000, endpoint) == "online"
    assert choose_mode(make_settings(google_cloud), 10_001, endpoint) == "batch"
    assert choose_mode(make_settings(google_cloud), 10, None) == "batch"
    assert choose_mode(make_settings(google_cloud, scoring_mode="batch"), 10, endpoint) == "batch"
    with pytest.raises(VertexScoringError, match="CHURN_VERTEX_SCORING_MODE is online"):
        choose_mode(make_settings(google_cloud, scoring_mode="online"), 10, None)


# The churn_scores asset with a champion registered in Vertex AI


@pytest.fixture
def vertex_champion(scoring_warehouse, google_cloud, monkeypatch):
    """Score once locally, then move the champion to the fake Vertex AI, served by the same SavedModel."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    from churn_assets.defs.deployment import registry
    from churn_assets.defs.deployment.vertex import MODEL_VERSION_LABEL, model_version_label
    from churn_assets.scoring.saved_model import local_path_from_uri
    from churn_assets.warehouse import open_client

    assert score(chunk_rows=500).success
    local_scores = latest_scores()
    with open_client() as client:
        champion = registry.current_champion(client)
        client.command(
            "INSERT INTO analytics.model_registry "
            "SELECT * REPLACE ('vertex' AS deployment_target, {uri:String} AS artifact_uri, now64(3, 'UTC') AS status_changed_at) "
            "FROM analytics.model_registry FINAL WHERE model_version = {version:String}",
            parameters={"uri": f"gs://{BUCKET}/models/{champion.model_version}/", "version": champion.model_version},
        )
    model_name = google_cloud.add_model("churn-model", labels={MODEL_VERSION_LABEL: model_version_label(champion.model_version)})
    google_cloud.predictor = serving_predictor(local_path_from_uri(champion.artifact_uri) / "saved_model")

    monkeypatch.setattr(google.auth, "default", lambda *args, **kwargs: (AnonymousCredentials(), PROJECT))
    settings = {
        "PROJECT": PROJECT, "REGION": REGION, "STAGING_BUCKET": f"gs://{BUCKET}", "API_ENDPOINT": google_cloud.url,
        "STORAGE_API_ENDPOINT": google_cloud.url, "API_TRANSPORT": "rest", "REQUEST_TIMEOUT_SECONDS": "10",
        "RETRY_DELAY_SECONDS": "0.01", "BATCH_POLL_SECONDS": "0.01", "ENDPOINT_DISPLAY_NAME": "churn-endpoint",
    }
    for name, value in settings.items():
        monkeypatch.setenv(f"CHURN_VERTEX_{name}", value)
    return {"local_scores": local_scores, "model_name": model_name}


def serve_on_endpoint(google_cloud, model_name: str, traffic: dict[str, int]) -> str:
    """Add the endpoint with these deployed models. The one called "champion" serves `model_name` version 1."""
    endpoint_name = google_cloud.add_endpoint("churn-endpoint", traffic)
    for deployed in google_cloud.endpoints[endpoint_name.rsplit("/", 1)[1]]["deployedModels"]:
        if deployed["id"] == "champion":
            deployed["model"] = model_name
    return endpoint_name


def assert_same_scores(vertex_scores: list[tuple], local_scores: list[tuple]) -> None:
    assert [row[1] for row in vertex_scores] == [row[1] for row in local_scores]
    assert {row[0] for row in vertex_scores}.isdisjoint({row[0] for row in local_scores})
    np.testing.assert_allclose([row[2] for row in vertex_scores], [row[2] for row in local_scores], rtol=1e-6)


def test_batch_job_scores_like_local_model(vertex_champion, google_cloud):
    result = score(chunk_rows=500)

    assert result.success
    metadata = result.asset_materializations_for_node("churn_scores")[0].metadata
    assert metadata["scoring_method"].value == "vertex batch"
    assert_same_scores(latest_scores(), vertex_champion["local_scores"])
    job = google_cloud.sent("POST", LOCATION + r"/batchPredictionJobs")[0].json()
    assert job["model"] == f"{vertex_champion['model_name']}@1"
    assert len(job["inputConfig"]["gcsSource"]["uris"]) == 3
    assert all(f"/scoring/{result.run_id}/instances/" in uri for uri in job["inputConfig"]["gcsSource"]["uris"])


def test_endpoint_serving_only_champion_scores_online(vertex_champion, google_cloud):
    endpoint_name = serve_on_endpoint(google_cloud, vertex_champion["model_name"], {"champion": 100})

    result = score(chunk_rows=500)

    assert result.success
    assert result.asset_materializations_for_node("churn_scores")[0].metadata["scoring_method"].value == "vertex online"
    request_sizes = [len(request.json()["instances"]) for request in google_cloud.sent("POST", f"/v1/{endpoint_name}:predict")]
    assert sum(request_sizes) == 1500
    assert max(request_sizes) == 500
    assert google_cloud.sent("POST", LOCATION + r"/batchPredictionJobs") == []
    assert_same_scores(latest_scores(), vertex_champion["local_scores"])


def test_failed_batch_job_keeps_scores(vertex_champion, google_cloud):
    # The endpoint gives the champion 90% of its traffic, so scoring uses a batch job.
    serve_on_endpoint(google_cloud, vertex_champion["model_name"], {"champion": 90, "other": 10})
    google_cloud.batch_job_states = ["JOB_STATE_RUNNING", "JOB_STATE_FAILED"]

    result = score(chunk_rows=500)

    assert not result.success
    message = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert "previous scores stay published" in message
    assert "ended as JOB_STATE_FAILED" in message
    assert len(google_cloud.sent("POST", LOCATION + r"/batchPredictionJobs")) == 1
    assert latest_scores() == vertex_champion["local_scores"]
