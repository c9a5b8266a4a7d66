import numpy as np
import pandas as pd

from pipeline.evaluation.metrics import classification_metrics, evaluate_predictions, expected_calibration_error


def test_metrics_known_values():
    m = classification_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2)
    assert m["accuracy"] == 0.75
    assert abs(m["macro_f1"] - (2 / 3 + 0.8) / 2) < 1e-9


def test_ece_perfectly_calibrated_is_zero():
    proba = np.array([[1.0, 0.0], [0.0, 1.0]])
    ece, table = expected_calibration_error(proba, np.array([0, 1]))
    assert ece == 0.0 and table["count"].sum() == 2


def test_evaluate_predictions_writes_plots_and_tables(tmp_path):
    frame = pd.DataFrame({"text": ["a", "bb", "ccc" * 30, "d"], "label": ["x", "y", "x", "y"], "source": ["f1"] * 4})
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    report = evaluate_predictions(frame, proba, np.array([0, 1, 0, 1]), ["x", "y"], tmp_path)
    assert report["metrics"]["accuracy"] == 0.5
    for name in ("confusion_matrix.png", "reliability.png", "per_class.csv", "confident_mistakes.csv", "slices.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert report["mistakes"].iloc[0]["confidence"] == 0.7
    assert set(report["slices"]["slice"]) == {"length", "source"}
