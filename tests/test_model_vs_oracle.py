"""On a simulated shop, the Keras model gets close to the oracle, which reads every user's hidden state."""

import subprocess
from datetime import date

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churn_assets.simulate import simulate_shop, true_churn_probabilities
from churn_assets.training.features import read_training_set
from churn_assets.training.model import Hyperparameters
from churn_assets.training.train import MODEL_NAME, train_and_evaluate
from churn_assets.warehouse import open_client
from conftest import REPO_ROOT, subprocess_environment

pytestmark = pytest.mark.slow

USERS = 20_000
DAYS = 400
WINDOW_DAYS = 90


def test_keras_reaches_95_percent_of_oracle_auc(warehouse_url):
    with open_client() as client:
        simulate_shop(client, users=USERS, days=DAYS, seed=11, start_date=date(2024, 1, 1), progress=False)

    build = subprocess.run(
        ["dbt", "build", "--exclude", "test_type:unit"],
        cwd=REPO_ROOT / "dbt_project", env=subprocess_environment(CHURN_WAREHOUSE_URL=warehouse_url),
        capture_output=True, text=True, timeout=900,
    )
    assert build.returncode == 0, build.stdout[-3000:]

    with open_client() as client:
        table = read_training_set(client)
        outcome = train_and_evaluate(table, Hyperparameters(), log=lambda message: None)
        oracle = true_churn_probabilities(client, date.fromisoformat(outcome.evaluation_cutoff), WINDOW_DAYS)

    is_evaluation = table.column("split").to_numpy(zero_copy_only=False) == "evaluation"
    user_ids = table.column("user_id").to_numpy(zero_copy_only=False)[is_evaluation]
    oracle_by_user = dict(zip(oracle["user_id"], oracle["churn_probability"]))
    matched = np.array([user in oracle_by_user for user in user_ids])
    oracle_scores = np.array([oracle_by_user[user] for user in user_ids[matched]])
    labels = outcome.evaluation_labels[matched]

    model_auc = roc_auc_score(labels, outcome.scores[MODEL_NAME][matched])
    oracle_auc = roc_auc_score(labels, oracle_scores)
    print(f"Keras ROC AUC {model_auc:.4f}, oracle ROC AUC {oracle_auc:.4f}, ratio {model_auc / oracle_auc:.3f}")

    assert matched.mean() > 0.99
    assert oracle_auc > 0.75
    assert model_auc >= 0.95 * oracle_auc
