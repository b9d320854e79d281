"""Split the training set by snapshot date: train, later-in-time validation, held-out evaluation."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class Splits:
    """Row masks of the training table for each role."""

    train: np.ndarray
    validation: np.ndarray
    evaluation: np.ndarray
    description: str


def split_by_snapshot(table: pa.Table) -> Splits:
    """Validate on the latest training snapshot and train on the older ones.

    With a single training snapshot there is nothing later in time to validate on, so a fixed
    20% of its users (chosen by a seeded shuffle) is held out for early stopping instead.
    """
    split = table.column("split").to_numpy(zero_copy_only=False)
    as_of = pc.cast(table.column("as_of_date"), pa.int32()).to_numpy(zero_copy_only=False)
    evaluation = split == "evaluation"
    training = split == "train"
    if not evaluation.any() or not training.any():
        raise ValueError(
            "The training set needs an evaluation snapshot and at least one training snapshot; "
            "check the dbt vars evaluation_cutoff_date and training_snapshot_count."
        )

    snapshot_dates = np.unique(as_of[training])
    if len(snapshot_dates) >= 2:
        validation = training & (as_of == snapshot_dates[-1])
        description = f"{len(snapshot_dates) - 1} training snapshot(s), validation on the latest one"
    else:
        generator = np.random.default_rng(7)
        validation = training & (generator.random(len(split)) < 0.2)
        description = "one training snapshot, validation on a seeded 20% of its users"
    return Splits(training & ~validation, validation, evaluation, description)
