"""Labels are user data: any characters, any length up to a few hundred, thousands of classes, and the
run still logs its metrics and registers its version."""

import json

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.utils.validation import _validate_metric_name

from pipeline.registry import gate as promotion
from pipeline.registry import tracking as registry
from pipeline.registry import versions as registration
from pipeline.registry.naming import label_slug, per_class_metrics

ODD_LABELS = ["C++", "billing & payments", "why?", "naïve/ünïcode", "a/../b", "x" * 200, "refund", "Refund"]


def test_label_slugs_are_valid_distinct_metric_names():
    slugs = [label_slug(label) for label in ODD_LABELS]
    for slug in slugs:
        _validate_metric_name(f"test_f1.{slug}")
        assert len(f"test_f1.{slug}") <= 250
    assert len(set(slugs)) == len(ODD_LABELS)
    assert label_slug("refund") == "refund", "plain names stay readable"


def test_per_class_metrics_above_the_cap_go_to_the_artifact_only():
    rows = [{"label": f"class {i}", "f1": 0.5} for i in range(300)]
    assert per_class_metrics("test_f1.", rows) == ({}, {})
    metrics, names = per_class_metrics("test_f1.", rows[:3])
    assert sorted(names.values()) == ["class 0", "class 1", "class 2"] and len(metrics) == 3


@pytest.fixture
def client(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri, registry_uri=uri)


def many_labels(count: int) -> list[str]:
    return ODD_LABELS + [f"intent {i}: {'long ' * 30}{i}" for i in range(count - len(ODD_LABELS))]


def test_two_thousand_odd_labels_log_and_register(client, tmp_path):
    from pipeline.config import PromotionConfig

    labels = many_labels(2000)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, len(labels), 6000)
    candidate = np.where(rng.random(6000) < 0.8, truth, rng.integers(0, len(labels), 6000))
    champion = np.where(rng.random(6000) < 0.8, truth, rng.integers(0, len(labels), 6000))
    policy = PromotionConfig()
    comparison = promotion.compare_predictions(
        [labels[i] for i in truth],
        [labels[i] for i in candidate],
        [labels[i] for i in champion],
        policy,
        label_names=labels,
    )
    assert len(comparison["per_class"]) == 2000 and any(r["regressed"] for r in comparison["per_class"])
    metrics = {"accuracy": 0.8, "macro_f1": 0.7}
    outcome = {
        "model_name": "many",
        "primary_metric": "macro_f1",
        "candidate": {"run_id": "r", "metrics": metrics},
        "champion": {"version": "1"},
        "comparison": comparison,
        "gate": promotion.decide_promotion(policy, metrics, comparison),
        "test_rows": 6000,
        "test_split_digest": "d",
        "compared_at": "now",
        "policy": {},
    }
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    per_class, _ = per_class_metrics("test_f1.", [{"label": label, "f1": 0.5} for label in labels[:150]])
    registry.log_metrics(client, run_id, per_class)
    registration.log_comparison(client, run_id, outcome, "# report")
    lineage = {"label_map": {label: i for i, label in enumerate(labels)}, "snapshot_id": "s"}
    tags = registration.version_tags(lineage, metrics, outcome)
    client.create_registered_model("many")
    version = client.create_model_version("many", str(tmp_path), run_id=run_id, tags=tags)
    stored = client.get_model_version("many", version.version).tags
    compact = json.loads(stored["comparison"])
    assert compact["comparison"]["classes"] == 2000 and compact["comparison"]["regressed_count"] > 0
    assert "registry/label_map.json" in stored["label_map"], "a label map too big for a tag points to the artifact"
    run = client.get_run(run_id)
    assert "more; see registry/comparison.json" in run.data.tags["regressed_classes"]
    assert {label_slug(label) for label in ODD_LABELS} <= {k.removeprefix("test_f1.") for k in run.data.metrics}
