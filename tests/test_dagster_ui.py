"""The Dagster UI and daemon on a simulated shop: `dagster dev` from the repository root, the
churn_pipeline job launched through GraphQL, the fresh-events sensor reacting to appended events,
and the asset graph rendered in headless Chromium."""

import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from conftest import REPO_ROOT, subprocess_environment

pytestmark = pytest.mark.slow

# With the default dbt vars (90-day label window, evaluation and 3 training cutoffs one window apart),
# the earliest cutoff lies 360 days before the last event, so 400 days leave 40 days of history there.
SHOP_USERS = 1500
SHOP_DAYS = 400
SHOP_SEED = 7

REPOSITORY_SELECTOR = {"repositoryLocationName": "churn_assets", "repositoryName": "__repository__"}
SENSOR_SELECTOR = {**REPOSITORY_SELECTOR, "sensorName": "fresh_events_sensor"}
SENSOR_TRIGGER_TAG = {"key": "churn/trigger", "value": "fresh_events"}
SENSOR_INTERVAL_SECONDS = 30
QUIET_TICKS_AFTER_RUN = 2

STARTUP_TIMEOUT_SECONDS = 240
PIPELINE_TIMEOUT_SECONDS = 600
REFRESH_TIMEOUT_SECONDS = 300
POLL_SECONDS = 3
FINISHED_RUN_STATUSES = {"SUCCESS", "FAILURE", "CANCELED"}

ASSET_GROUPS = ("raw", "dbt_staging", "dbt_intermediate", "dbt_marts", "model", "scoring", "offers")
DBT_MODEL_NAMES = ("stg_purchases", "int_user_events", "user_features", "churn_training_set", "offer_redemption")
PYTHON_ASSET_NAMES = ("churn_model", "deployed_model", "churn_scores", "discount_offers")
BROWSER_WINDOW = (2400, 1300)
BROWSER_VIRTUAL_TIME_MS = 20_000
BROWSER_TIMEOUT_SECONDS = 180
ARTIFACT_DIR = REPO_ROOT / "test-artifacts"
DOCS_SCREENSHOT = REPO_ROOT / "docs" / "asset-graph.png"

# There is no run queue limit, because overlapping runs must cope through the warehouse lock, as they
# do on a default Dagster instance.
DAGSTER_INSTANCE_SETTINGS = """\
telemetry:
  enabled: false
nux:
  enabled: false
"""

RUN_QUERY = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName endTime }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!) {
  runOrError(runId: $runId) {
    ... on Run {
      eventConnection(limit: 5000) {
        events {
          __typename
          ... on MessageEvent { message level stepKey }
          ... on ErrorEvent { error { message } }
        }
      }
    }
  }
}
"""

RUNS_QUERY = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status jobName endTime } }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN_MUTATION = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on Error { message }
  }
}
"""

START_SENSOR_MUTATION = """
mutation StartSensor($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

SENSOR_TICKS_QUERY = """
query SensorTicks($sensorSelector: SensorSelector!) {
  sensorOrError(sensorSelector: $sensorSelector) {
    __typename
    ... on Sensor {
      sensorState {
        status
        ticks(limit: 200) { tickId status timestamp endTimestamp runIds skipReason error { message } }
      }
    }
    ... on PythonError { message }
  }
}
"""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def executable(name: str, environment: dict[str, str]) -> str:
    path = shutil.which(name, path=environment["PATH"])
    assert path, f"{name} not found on PATH {environment['PATH']}"
    return path


def run_command(command, environment, timeout=600):
    completed = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, f"{' '.join(map(str, command))} failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
    return completed


def start_in_own_process_group(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_process_group(process: subprocess.Popen) -> None:
    """Kill what is left of the process group that `process` leads, such as browser helper processes."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def finish_process_group(process: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """Wait for `process`, killing its whole process group if it outlives `timeout` seconds."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process_group(process)
        pytest.fail(f"{' '.join(process.args)} did not finish within {timeout} s")
    return process.returncode, stdout, stderr


def wait_for(condition, timeout, description, diagnostics=lambda: ""):
    """Poll `condition` until it returns a truthy value and return that value. Fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting for {description}.\n{diagnostics()}")
        time.sleep(POLL_SECONDS)


class DagsterDev:
    """A `dagster dev` process group (webserver, daemon, code server and run workers) on a loopback port."""

    def __init__(self, environment: dict[str, str], log_path: Path):
        self.port = free_loopback_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log_file = open(log_path, "wb")
        command = [executable("dagster", environment), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)]

        # Dagster gives SIGTERM the SIGINT handler. A non-interactive shell that starts pytest in the
        # background sets SIGINT to ignored, children inherit that, and `dagster dev` would then ignore SIGTERM.
        previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=environment, stdout=self._log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            signal.signal(signal.SIGINT, previous_handler)

    def log_tail(self, characters: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace")
        return f"--- last {characters} characters of {self.log_path} ---\n{text[-characters:]}"

    def is_serving(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"dagster dev exited with status {self.process.returncode} during startup.\n{self.log_tail()}")
        try:
            return requests.get(f"{self.url}/server_info", timeout=5).ok
        except requests.RequestException:
            return False

    def wait_until_serving(self) -> None:
        wait_for(self.is_serving, STARTUP_TIMEOUT_SECONDS, f"dagster dev to answer at {self.url}/server_info", self.log_tail)

    def stop(self, grace_seconds: float = 60) -> None:
        """Terminate the whole process group, then kill whatever is left after `grace_seconds`."""
        if self._log_file.closed:
            return
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        if self._group_alive():
            self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log_file.close()

    def _signal_group(self, signal_number: int) -> None:
        try:
            os.killpg(self.process.pid, signal_number)
        except ProcessLookupError:
            pass

    def _group_alive(self) -> bool:
        self.process.poll()
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def graphql(dagster: DagsterDev, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"{dagster.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    assert response.ok, f"GraphQL request failed with HTTP {response.status_code}: {response.text[:2000]}"
    body = response.json()
    assert not body.get("errors"), f"GraphQL errors: {body['errors']}"
    return body["data"]


def launch_job(dagster: DagsterDev, job_name: str) -> str:
    execution_params = {"selector": {**REPOSITORY_SELECTOR, "jobName": job_name}}
    result = graphql(dagster, LAUNCH_RUN_MUTATION, {"executionParams": execution_params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", f"launching {job_name} failed: {result}"
    return result["run"]["runId"]


def fetch_run(dagster: DagsterDev, run_id: str) -> dict:
    run = graphql(dagster, RUN_QUERY, {"runId": run_id})["runOrError"]
    assert run["__typename"] == "Run", f"run {run_id} not found: {run}"
    return run


def run_error_messages(dagster: DagsterDev, run_id: str) -> str:
    events = graphql(dagster, RUN_EVENTS_QUERY, {"runId": run_id})["runOrError"]["eventConnection"]["events"]
    lines = []
    for event in events:
        error = event.get("error")
        if event.get("level") == "ERROR" or error:
            lines.append(f"[{event['__typename']} {event.get('stepKey') or ''}] {event.get('message')}")
            if error:
                lines.append(error["message"])
    return "\n".join(lines) or "(the run recorded no error events)"


def wait_for_run_success(dagster: DagsterDev, run_id: str, timeout: float) -> dict:
    def finished_run() -> dict | None:
        run = fetch_run(dagster, run_id)
        return run if run["status"] in FINISHED_RUN_STATUSES else None

    run = wait_for(finished_run, timeout, f"run {run_id} to finish", dagster.log_tail)
    assert run["status"] == "SUCCESS", (
        f"{run['jobName']} run {run_id} ended with {run['status']}:\n{run_error_messages(dagster, run_id)}\n{dagster.log_tail()}"
    )
    return run


def fetch_runs(dagster: DagsterDev, runs_filter: dict) -> list[dict]:
    result = graphql(dagster, RUNS_QUERY, {"filter": runs_filter})["runsOrError"]
    assert result["__typename"] == "Runs", f"listing runs failed: {result}"
    return result["results"]


def sensor_runs(dagster: DagsterDev) -> list[dict]:
    return fetch_runs(dagster, {"tags": [SENSOR_TRIGGER_TAG]})


def start_sensor(dagster: DagsterDev) -> None:
    result = graphql(dagster, START_SENSOR_MUTATION, {"sensorSelector": SENSOR_SELECTOR})["startSensor"]
    assert result["__typename"] == "Sensor", f"starting the sensor failed: {result}"
    assert result["sensorState"]["status"] == "RUNNING"


def sensor_ticks(dagster: DagsterDev) -> list[dict]:
    """Return the sensor's ticks, oldest first."""
    sensor = graphql(dagster, SENSOR_TICKS_QUERY, {"sensorSelector": SENSOR_SELECTOR})["sensorOrError"]
    assert sensor["__typename"] == "Sensor", f"reading the sensor failed: {sensor}"
    return sorted(sensor["sensorState"]["ticks"], key=lambda tick: tick["timestamp"])


def finished_ticks(dagster: DagsterDev) -> list[dict]:
    return [tick for tick in sensor_ticks(dagster) if tick["status"] != "STARTED"]


def describe_ticks(ticks: list[dict]) -> str:
    lines = [
        f"{time.strftime('%H:%M:%S', time.gmtime(tick['timestamp']))} {tick['status']} runs={tick['runIds']} "
        f"skip={tick['skipReason']!r} error={(tick['error'] or {}).get('message')!r}"
        for tick in ticks
    ]
    return "--- sensor ticks ---\n" + "\n".join(lines)


def asset_graph_url(dagster: DagsterDev) -> str:
    """Return the global asset lineage page with every group expanded, so each asset shows by name."""
    expanded = ",".join(f"global@global:{group}" for group in ASSET_GROUPS)
    return f"{dagster.url}/asset-groups?{urlencode({'expanded': expanded}, safe='@:,')}"


def chromium_command(chromium: str, profile_dir: Path, *arguments: str) -> list[str]:
    width, height = BROWSER_WINDOW
    return [
        chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--user-data-dir={profile_dir}", f"--window-size={width},{height}",
        f"--virtual-time-budget={BROWSER_VIRTUAL_TIME_MS}", *arguments,
    ]


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def render_asset_graph(chromium: str, dagster: DagsterDev, work_dir: Path) -> tuple[Path, str]:
    """Save a screenshot of the asset graph page and return its path with the page's rendered DOM."""
    ARTIFACT_DIR.mkdir(exist_ok=True)
    screenshot = ARTIFACT_DIR / "asset-graph.png"
    screenshot.unlink(missing_ok=True)
    page = asset_graph_url(dagster)

    # Two browsers with separate profiles, so the screenshot and the DOM dump render at the same time.
    screenshot_browser = start_in_own_process_group(
        chromium_command(chromium, work_dir / "chromium-screenshot", f"--screenshot={screenshot}", page)
    )
    try:
        dom_browser = start_in_own_process_group(chromium_command(chromium, work_dir / "chromium-dom", "--dump-dom", page))
        try:
            screenshot_status, _, screenshot_errors = finish_process_group(screenshot_browser, BROWSER_TIMEOUT_SECONDS)
            dom_status, dom, dom_errors = finish_process_group(dom_browser, BROWSER_TIMEOUT_SECONDS)
        finally:
            kill_process_group(dom_browser)
    finally:
        kill_process_group(screenshot_browser)

    assert screenshot_status == 0, f"chromium could not take a screenshot of {page}:\n{screenshot_errors[-3000:]}"
    assert screenshot.is_file(), f"chromium exited without writing {screenshot}:\n{screenshot_errors[-3000:]}"
    assert dom_status == 0, f"chromium could not dump the DOM of {page}:\n{dom_errors[-3000:]}"
    (ARTIFACT_DIR / "asset-graph.html").write_text(dom)
    return screenshot, dom


def query_warehouse(environment: dict[str, str], sql: str, parameters: dict | None = None) -> list[tuple]:
    from churn_assets.warehouse import open_client
    from churn_assets.warehouse.settings import parse_url

    with open_client(parse_url(environment["CHURN_WAREHOUSE_URL"])) as client:
        return client.query(sql, parameters=parameters or {}).result_rows


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path:
        return path
    message = "chromium is not on PATH; install it with tests/install-browser"
    if os.environ.get("CHURN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message} (CHURN_REQUIRE_BROWSER=1 requires the browser test)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def environment(tmp_path_factory, chromium) -> dict[str, str]:
    """Return a child environment with a private warehouse, model folder and Dagster home."""
    root = tmp_path_factory.mktemp("dagster_ui")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_INSTANCE_SETTINGS)
    return subprocess_environment(
        CHURN_WAREHOUSE_URL=f"chdb://{root / 'warehouse' / 'chdb'}",
        CHURN_MODEL_DIR=str(root / "models"),
        CHURN_OFFER_CODE_KEY="dagster-ui-test-key",
        DAGSTER_HOME=str(dagster_home),
    )


@pytest.fixture(scope="module")
def dagster(environment):
    """Start `dagster dev` (webserver and daemon), simulate a shop, and stop the process group afterwards.

    The shop is simulated while Dagster starts, which is safe because nothing in Dagster opens the
    warehouse until a run is launched or the sensor is turned on.
    """
    root = Path(environment["DAGSTER_HOME"]).parent
    server = DagsterDev(environment, root / "dagster-dev.log")
    try:
        churn = executable("churn", environment)
        run_command(
            [churn, "simulate", "--users", str(SHOP_USERS), "--days", str(SHOP_DAYS), "--seed", str(SHOP_SEED), "--no-progress"],
            environment,
        )
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


def test_pipeline_sensor_and_asset_graph(environment, dagster, chromium):
    started = time.monotonic()

    def log_step(message: str) -> None:
        print(f"[{time.monotonic() - started:4.0f} s] {message}", flush=True)

    # The whole pipeline, launched as a person would from the UI.
    pipeline_run_id = launch_job(dagster, "churn_pipeline")
    wait_for_run_success(dagster, pipeline_run_id, PIPELINE_TIMEOUT_SECONDS)
    log_step(f"churn_pipeline run {pipeline_run_id} succeeded")

    # Started with no cursor on a warehouse that has events, the sensor requests one refresh at once.
    start_sensor(dagster)
    first_tick = wait_for(
        lambda: finished_ticks(dagster), SENSOR_INTERVAL_SECONDS * 3, "the sensor's first tick", dagster.log_tail,
    )[0]
    for run_id in first_tick["runIds"]:
        wait_for_run_success(dagster, run_id, REFRESH_TIMEOUT_SECONDS)
    runs_before_append = {run["runId"] for run in sensor_runs(dagster)}
    log_step(f"first sensor tick {first_tick['status']}, {len(runs_before_append)} sensor run(s) before appending events")

    # One appended day of events starts exactly one refresh run.
    churn = executable("churn", environment)
    run_command([churn, "simulate", "--append-days", "1", "--no-progress"], environment)
    new_runs = wait_for(
        lambda: [run for run in sensor_runs(dagster) if run["runId"] not in runs_before_append],
        SENSOR_INTERVAL_SECONDS * 4, "a sensor run for the appended events",
        lambda: describe_ticks(sensor_ticks(dagster)) + "\n" + dagster.log_tail(),
    )
    refresh_run_id = new_runs[0]["runId"]
    refresh_run = wait_for_run_success(dagster, refresh_run_id, REFRESH_TIMEOUT_SECONDS)
    assert refresh_run["jobName"] == "churn_refresh"
    log_step(f"churn_refresh run {refresh_run_id} for the appended day succeeded")

    # The browser renders the graph while the sensor keeps ticking on unchanged data.
    screenshot, dom = render_asset_graph(chromium, dagster, Path(environment["DAGSTER_HOME"]).parent)
    log_step(f"asset graph rendered to {screenshot}")
    assert png_size(screenshot) == BROWSER_WINDOW
    assert screenshot.stat().st_size > 50_000, "the screenshot is almost empty"
    missing_names = [name for name in DBT_MODEL_NAMES + PYTHON_ASSET_NAMES if name not in dom]
    assert missing_names == [], f"the asset graph page does not show {missing_names}; DOM in {ARTIFACT_DIR / 'asset-graph.html'}"
    shutil.copyfile(screenshot, DOCS_SCREENSHOT)

    # Later ticks see no new events, so they must not start another run.
    wait_for(
        lambda: len([tick for tick in finished_ticks(dagster) if tick["timestamp"] > refresh_run["endTime"]]) >= QUIET_TICKS_AFTER_RUN,
        SENSOR_INTERVAL_SECONDS * (QUIET_TICKS_AFTER_RUN + 2), f"{QUIET_TICKS_AFTER_RUN} sensor ticks after the refresh run",
        lambda: describe_ticks(sensor_ticks(dagster)),
    )
    ticks = sensor_ticks(dagster)
    all_sensor_runs = sensor_runs(dagster)
    print(describe_ticks(ticks))
    new_run_ids = [run["runId"] for run in all_sensor_runs if run["runId"] not in runs_before_append]
    assert new_run_ids == [refresh_run_id], f"expected one run for the appended events\n{describe_ticks(ticks)}"

    failed_runs = fetch_runs(dagster, {"statuses": ["FAILURE", "CANCELED"]})
    assert failed_runs == [], f"runs failed: {failed_runs}"
    failed_ticks = [tick for tick in ticks if tick["status"] == "FAILURE" or tick["error"]]
    assert failed_ticks == [], describe_ticks(ticks)
    embedded_server_skips = [tick for tick in ticks if "EmbeddedServer" in (tick["skipReason"] or "")]
    assert embedded_server_skips == [], describe_ticks(ticks)

    # chdb lets one process open the warehouse, so read it after Dagster has stopped.
    dagster.stop()
    log_step("dagster dev stopped")
    scoring_runs = query_warehouse(
        environment, "SELECT scoring_run_id, feature_date FROM analytics.scoring_runs FINAL ORDER BY completed_at",
    )
    assert len(scoring_runs) == 1 + len(all_sensor_runs)
    (previous_run_id, previous_feature_date), (latest_run_id, latest_feature_date) = scoring_runs[-2:]
    assert previous_run_id in runs_before_append | {pipeline_run_id}
    assert latest_run_id == refresh_run_id
    assert latest_feature_date == previous_feature_date + timedelta(days=1)

    latest_rows, latest_run_ids = query_warehouse(
        environment, "SELECT count(), groupUniqArray(scoring_run_id) FROM analytics.latest_churn_scores",
    )[0]
    assert latest_rows > 0
    assert latest_run_ids == [refresh_run_id]
    scored_users = query_warehouse(
        environment, "SELECT count() FROM analytics.churn_scores WHERE scoring_run_id = {run_id:String}",
        {"run_id": refresh_run_id},
    )[0][0]
    assert scored_users == latest_rows
