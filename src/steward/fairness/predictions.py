"""Per-example predictions of a fairness evaluation, as CSV: what every evaluation writes next to its
report (RUN_DIR/fairness/predictions.csv after training; OUT/predictions.csv, and
OUT/predictions-before.csv for --before, from `steward fairness eval`), so that anyone can check the
figures with their own tools.

Columns: `row_id` (the row's number in the evaluation source, file order), `score` (the predicted
probability of the positive class, every digit of the float), `label` (0/1, as binarised for the
metrics), then one 0/1 column per identity subgroup, empty where the row carries no identity
annotation at all (the metrics count such a row in no subgroup).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from steward.fairness.data import IdentityData
from steward.fairness.metrics import FairnessError
from steward.io import atomic_write_text

COLUMNS = ("row_id", "score", "label")


def predictions_csv(data: IdentityData, scores: np.ndarray) -> str:
    """The CSV text for `data`'s rows and their `scores`."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (len(data),):
        raise FairnessError(f"predictions: {scores.shape[0] if scores.ndim else 0} scores for {len(data)} rows")
    names = data.subgroup_names()
    annotated = np.ones(len(data), dtype=bool) if data.annotated is None else data.annotated
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*COLUMNS, *names])
    ids = data.row_numbers()
    for i in range(len(data)):
        member = [int(data.groups[s][i]) if annotated[i] else "" for s in names]
        w.writerow([int(ids[i]), repr(float(scores[i])), int(data.labels[i]), *member])
    return buf.getvalue()


def write_predictions(path: str | Path, data: IdentityData, scores: np.ndarray) -> Path:
    """Write `predictions_csv(data, scores)` to `path` (atomically); returns the path."""
    path = Path(path)
    atomic_write_text(path, predictions_csv(data, scores))
    return path
