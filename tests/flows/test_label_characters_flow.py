"""A full training run whose labels hold characters MLflow refuses in names registers its model."""

import json

import mlflow
import pandas as pd
from mlflow import MlflowClient

from pipeline.flows.training import training_flow
from pipeline.workspace import Workspace

LABELS = ["C++", "billing & payments", "why?", "naïve/ünïcode", "L" + "o" * 198 + "ng"]
WORDS = ["compiler", "invoice", "question", "accent", "lengthy"]


def test_a_run_with_odd_labels_trains_registers_and_reports_every_class(tiny_config):
    landing = Workspace.resolve(tiny_config.workspace).ensure().landing
    rows = [
        (f"{word} example number {i} {word}", label)
        for label, word in zip(LABELS, WORDS, strict=True)
        for i in range(40)
    ]
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(landing / "odd.csv", index=False)
    first = training_flow(config=tiny_config)
    assert first["status"] == "completed" and "champion" in first["aliases"]
    second = training_flow(config=tiny_config)  # compared with the champion: per-class comparison tags too
    assert second["status"] == "completed" and second["model_version"] in ("2", 2)

    uri = Workspace.resolve(tiny_config.workspace).tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    version = client.get_model_version("tiny-classifier", "2")
    assert set(json.loads(version.tags["label_map"])) == set(LABELS)
    assert json.loads(version.tags["comparison"])["comparison"]["classes"] == len(LABELS)
    names = json.loads(open(client.download_artifacts(second["run_id"], "evaluation/class_metrics.json")).read())
    assert sorted(names["per_class_metric_labels"].values()) == sorted(LABELS)
    assert set(names["per_class_metric_labels"]) <= set(client.get_run(second["run_id"]).data.metrics)
    predicted = mlflow.pyfunc.load_model("models:/tiny-classifier/2").predict(["compiler example number 3 compiler"])
    assert predicted["label"].iloc[0] in LABELS
