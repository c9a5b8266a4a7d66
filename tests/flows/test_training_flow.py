"""The training flow end to end under a Prefect test harness, with a tiny random BERT."""

import shutil

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipeline.data.demo import write_demo_files
from pipeline.flows.training import training_flow
from pipeline.validation.results import DataValidationError
from pipeline.workspace import Workspace
from tests.conftest import FIXTURES


def registry_client(config):
    uri = Workspace.resolve(config.workspace).tracking_uri()
    mlflow.set_tracking_uri(uri)
    return MlflowClient(uri)


def test_training_flow_registers_a_model_that_predicts(tiny_config, recwarn, caplog):
    write_demo_files(Workspace.resolve(tiny_config.workspace).ensure().landing, (1,), rows_per_batch=300)
    result = training_flow(config=tiny_config)
    assert result["status"] == "completed"
    assert result["model_version"] == "1" or result["model_version"] == 1
    assert set(result["aliases"]) == {"champion", "challenger"}
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    client = registry_client(tiny_config)
    version = client.get_model_version_by_alias("tiny-classifier", "challenger")
    assert version.tags["snapshot_id"] == result["snapshot_id"]
    model = mlflow.pyfunc.load_model("models:/tiny-classifier@challenger")
    texts = ["my parcel is late", "the app crashes", "refund my invoice"]
    for payload in (texts, pd.DataFrame({"text": texts})):
        out = model.predict(payload)
        assert list(out.columns) == ["label", "score"] and len(out) == 3
        assert set(out["label"]) <= {"account", "billing", "shipping", "technical"}
    # a Prefect run routes warnings to the py.warnings logger; outside runs they stay warnings
    said = [str(w.message) for w in recwarn] + [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "type hints" in m], "predict is typed: MLflow keeps the given signature"
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and "test_macro_f1" in run.data.metrics

    # A second run on the same data keeps the champion and adds a challenger.
    second = training_flow(config=tiny_config)
    assert second["snapshot_id"] == result["snapshot_id"]
    assert second["aliases"] == ["challenger"]
    assert client.get_model_version_by_alias("tiny-classifier", "champion").version == version.version


def test_bad_data_stops_the_flow_and_registers_nothing(tiny_config):
    landing = Workspace.resolve(tiny_config.workspace).ensure().landing
    shutil.copy(FIXTURES / "bad_blank_and_missing_label.csv", landing / "bad.csv")
    with pytest.raises(DataValidationError) as info:
        training_flow(config=tiny_config)
    message = str(info.value)
    assert "bad.csv" in message and ("label_not_null" in message or "text_not_blank" in message)
    assert list((Workspace.resolve(tiny_config.workspace).quarantine).glob("*bad.csv.report.md"))
    client = registry_client(tiny_config)
    assert client.search_registered_models() == []
