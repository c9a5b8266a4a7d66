"""Metrics on the frozen test split: accuracy, macro-F1, per-class scores, confusion matrix,
calibration, the most confident mistakes and metrics by slice. Plots are written as PNG files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

logger = logging.getLogger(__name__)

LENGTH_BUCKETS = [0, 32, 64, 128, 256, 10**9]

MAX_TICK_LABELS = 60


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> dict:
    """Accuracy and macro-F1 over all ``num_labels`` classes (absent classes count as 0 F1 only if predicted)."""
    labels = list(range(num_labels))
    present = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=present or labels, average="macro", zero_division=0)),
    }


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, label_names: list[str]) -> pd.DataFrame:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(label_names))), zero_division=0
    )
    return pd.DataFrame(
        {"label": label_names, "precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}
    )


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray, bins: int = 10) -> tuple[float, pd.DataFrame]:
    """ECE over equal-width confidence bins, and the per-bin table behind the reliability plot."""
    return expected_calibration_error_from_confidence(proba.max(axis=1), proba.argmax(axis=1) == y_true, bins)


def expected_calibration_error_from_confidence(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> tuple[float, pd.DataFrame]:
    """ECE from the top-class confidence and whether each prediction was right.

    What a model that only returns its label and score (a served pyfunc) allows; equal to
    ``expected_calibration_error`` when the score is the top-class probability.
    """
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            acc, conf = float(correct[mask].mean()), float(confidence[mask].mean())
            ece += mask.mean() * abs(acc - conf)
            rows.append(
                {
                    "bin_low": edges[b],
                    "bin_high": edges[b + 1],
                    "count": int(mask.sum()),
                    "accuracy": acc,
                    "confidence": conf,
                }
            )
    return float(ece), pd.DataFrame(rows)


def confident_mistakes(
    frame: pd.DataFrame, proba: np.ndarray, y_true: np.ndarray, label_names: list[str], top: int = 20
) -> pd.DataFrame:
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    order = wrong[np.argsort(-proba[wrong, pred[wrong]])][:top]
    return pd.DataFrame(
        {
            "text": frame["text"].to_numpy()[order],
            "label": [label_names[i] for i in y_true[order]],
            "predicted": [label_names[i] for i in pred[order]],
            "confidence": proba[order, pred[order]],
        }
    )


def slice_metrics(frame: pd.DataFrame, y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> pd.DataFrame:
    """Accuracy and macro-F1 per text-length bucket (characters) and per source file."""
    lengths = frame["text"].str.len().to_numpy()
    buckets = pd.cut(
        lengths,
        LENGTH_BUCKETS,
        right=False,
        labels=[f"{a}-{b - 1}" if b < 10**9 else f"{a}+" for a, b in zip(LENGTH_BUCKETS, LENGTH_BUCKETS[1:])],
    )
    rows = []
    for kind, keys in (
        ("length", np.asarray(buckets.astype(str))),
        ("source", frame["source"].map(lambda s: Path(str(s)).name).to_numpy() if "source" in frame else None),
    ):
        if keys is None:
            continue
        for key in sorted(set(keys)):
            mask = keys == key
            rows.append(
                {
                    "slice": kind,
                    "value": key,
                    "count": int(mask.sum()),
                    **classification_metrics(y_true[mask], y_pred[mask], num_labels),
                }
            )
    return pd.DataFrame(rows)


def plot_confusion_matrix(matrix: np.ndarray, label_names: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = min(4 + 0.25 * len(label_names), 30)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    if len(label_names) <= MAX_TICK_LABELS:  # beyond that the names are unreadable and slow to lay out
        ticks = range(len(label_names))
        names = [name if len(name) <= 40 else name[:39] + "…" for name in label_names]
        ax.set_xticks(ticks, names, rotation=90 if len(label_names) > 6 else 0, fontsize=8)
        ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(label_names) <= 20:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if value > matrix.max() / 2 else "black",
            )
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(table: pd.DataFrame, ece: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    if not table.empty:
        ax.plot(table["confidence"], table["accuracy"], marker="o", label="model")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {ece:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_training_curve(history: list[dict], step_log: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if step_log:
        left.plot([r["step"] for r in step_log], [r["train_loss"] for r in step_log])
    left.set_xlabel("step")
    left.set_ylabel("training loss")
    for key in ("val_accuracy", "val_macro_f1"):
        points = [(r["epoch"], r[key]) for r in history if key in r]
        if points:
            right.plot(*zip(*points), marker="o", label=key)
    right.set_xlabel("epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evaluate_predictions(
    frame: pd.DataFrame, proba: np.ndarray, y_true: np.ndarray, label_names: list[str], out_dir: Path
) -> dict:
    """Every test-split measurement, with plots and tables written to ``out_dir``.

    Returns a dict with ``metrics`` (flat, loggable), ``per_class`` (DataFrame) and ``files``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = proba.argmax(axis=1)
    metrics = classification_metrics(y_true, pred, len(label_names))
    per_class = per_class_table(y_true, pred, label_names)
    ece, reliability = expected_calibration_error(proba, y_true)
    metrics["ece"] = ece
    metrics["mean_confidence"] = float(proba.max(axis=1).mean()) if len(proba) else 0.0
    metrics["test_rows"] = int(len(y_true))
    matrix = confusion_matrix(y_true, pred, labels=list(range(len(label_names))))
    mistakes = confident_mistakes(frame, proba, y_true, label_names)
    slices = slice_metrics(frame, y_true, pred, len(label_names))
    files = {
        "confusion_matrix.png": plot_confusion_matrix(matrix, label_names, out_dir / "confusion_matrix.png"),
        "reliability.png": plot_reliability(reliability, ece, out_dir / "reliability.png"),
    }
    for name, table in (("per_class.csv", per_class), ("confident_mistakes.csv", mistakes), ("slices.csv", slices)):
        table.to_csv(out_dir / name, index=False)
        files[name] = out_dir / name
    return {
        "metrics": metrics,
        "per_class": per_class,
        "slices": slices,
        "mistakes": mistakes,
        "confusion_matrix": matrix,
        "files": files,
        "predictions": pred,
    }
