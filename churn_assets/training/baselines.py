"""Baseline churn scorers evaluated on the same rows as the Keras model."""

import warnings

import numpy as np


def recency_scores(days_since_last_purchase: np.ndarray) -> np.ndarray:
    """Score churn by days since the last purchase: the longer ago, the likelier the churn."""
    return np.asarray(days_since_last_purchase, dtype=np.float64)


def _log_matrix(inputs: dict[str, np.ndarray], columns) -> np.ndarray:
    values = np.concatenate([inputs[name] for name in columns], axis=1)
    return np.sign(values) * np.log1p(np.abs(values))


def logistic_regression_scores(train_inputs, train_labels, evaluation_inputs, columns) -> np.ndarray:
    """Fit a class-balanced logistic regression on the log-scaled features; return churn probabilities."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced"))
    classifier.fit(_log_matrix(train_inputs, columns), train_labels)
    return classifier.predict_proba(_log_matrix(evaluation_inputs, columns))[:, 1]


def bg_nbd_scores(purchase_days: np.ndarray, days_since_first: np.ndarray, days_since_last: np.ndarray, window_days: int) -> np.ndarray:
    """Score churn with the BG/NBD model (Fader, Hardie and Lee 2005) fitted on each user's purchase history.

    Inputs are per user at the cutoff: days with a purchase, days since the first and since the last
    purchase. The score is the probability of no purchase in the window under a Poisson count with
    the model's expected number of purchases, so users with fewer expected purchases score higher.
    Users who never bought get the highest score.
    """
    from lifetimes import BetaGeoFitter

    purchase_days = np.asarray(purchase_days, dtype=np.float64)
    age = np.asarray(days_since_first, dtype=np.float64)
    buyers = purchase_days > 0
    frequency = np.where(buyers, purchase_days - 1, 0)
    # BG/NBD requires recency 0 for one purchase day and recency <= age; clipping keeps
    # inconsistent rows (for example a first purchase recorded after the last) from failing the fit.
    recency = np.where(frequency > 0, np.clip(age - np.asarray(days_since_last, dtype=np.float64), 0, age), 0)

    fitter = BetaGeoFitter(penalizer_coef=0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(frequency[buyers], recency[buyers], age[buyers])
        expected = np.asarray(
            fitter.conditional_expected_number_of_purchases_up_to_time(window_days, frequency[buyers], recency[buyers], age[buyers]),
            dtype=np.float64,
        )
    scores = np.ones(len(purchase_days))
    scores[buyers] = np.exp(-expected)
    return scores
