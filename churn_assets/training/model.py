"""The Keras churn model: named raw-feature inputs, preprocessing inside the model, one probability out."""

from dataclasses import dataclass

import numpy as np

SEED = 20261204


@dataclass(frozen=True)
class Hyperparameters:
    """Settings of one training run."""

    hidden_units: tuple[int, ...] = (32, 16)
    dropout: float = 0.1
    learning_rate: float = 0.003
    epochs: int = 30
    batch_size: int = 512
    early_stopping_patience: int = 4


def set_seeds(seed: int = SEED) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's kernels deterministic."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(feature_columns, training_inputs: dict[str, np.ndarray], settings: Hyperparameters):
    """Build a model that takes each feature by name, log-scales, normalises and classifies it."""
    import keras

    inputs = {name: keras.Input(shape=(1,), name=name, dtype="float32") for name in feature_columns}
    stacked = keras.layers.Concatenate(name="raw_features")([inputs[name] for name in feature_columns])
    # Counts and money are heavy-tailed; sign(x) * log1p(|x|) keeps trends' signs and tames the tails.
    log_scaled = keras.layers.Lambda(
        lambda values: keras.ops.sign(values) * keras.ops.log1p(keras.ops.abs(values)), name="signed_log1p"
    )(stacked)

    normaliser = keras.layers.Normalization(name="normalise")
    training_matrix = np.concatenate([training_inputs[name] for name in feature_columns], axis=1)
    normaliser.adapt(np.sign(training_matrix) * np.log1p(np.abs(training_matrix)))
    hidden = normaliser(log_scaled)

    for index, units in enumerate(settings.hidden_units):
        hidden = keras.layers.Dense(units, activation="relu", name=f"dense_{index}")(hidden)
        if settings.dropout > 0:
            hidden = keras.layers.Dropout(settings.dropout, seed=SEED + index, name=f"dropout_{index}")(hidden)
    probability = keras.layers.Dense(1, activation="sigmoid", name="churn_probability")(hidden)

    model = keras.Model(inputs=inputs, outputs=probability, name="churn_model")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=settings.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="roc_auc")],
    )
    return model


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weight each class by the inverse of its share, so both classes weigh the same in the loss."""
    positives = float(labels.sum())
    negatives = float(len(labels) - positives)
    if positives == 0 or negatives == 0:
        raise ValueError("The training rows hold only one class; the label window or cutoffs need changing.")
    total = positives + negatives
    return {0: total / (2 * negatives), 1: total / (2 * positives)}


def fit_model(model, train_inputs, train_labels, validation_inputs, validation_labels, settings: Hyperparameters, log=print):
    """Fit with early stopping on the later-in-time validation rows; return the Keras history."""
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            log(
                f"epoch {epoch + 1}: loss {logs.get('loss', float('nan')):.4f}, "
                f"validation loss {logs.get('val_loss', float('nan')):.4f}, "
                f"validation ROC AUC {logs.get('val_roc_auc', float('nan')):.4f}"
            )

    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_roc_auc", mode="max", patience=settings.early_stopping_patience, restore_best_weights=True
    )
    return model.fit(
        train_inputs,
        train_labels,
        validation_data=(validation_inputs, validation_labels),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        class_weight=class_weights(train_labels),
        callbacks=[early_stopping, EpochLogger()],
        shuffle=True,
        verbose=0,
    )


def predict_probabilities(model, inputs: dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """Return churn probabilities as a flat float64 array."""
    return np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), dtype=np.float64).reshape(-1)
