"""A champion that cannot be loaded because the store is unreachable stops the run before it registers."""

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from pipeline.config import load_config
from pipeline.evaluation import steps as evaluation_steps
from pipeline.registry.connection import ChampionUnavailableError, is_infrastructure_error
from pipeline.results import Evaluation, Splits, TrackingRun
from pipeline.scoring import model as scoring_model
from pipeline.workspace import Workspace
from tests.unit.registry_db import fresh_registry_uri


@pytest.fixture
def setup(tmp_path, migrated_registry_db):
    uri = fresh_registry_uri(migrated_registry_db, tmp_path)
    client = MlflowClient(uri, registry_uri=uri)
    client.create_registered_model("m")
    client.create_model_version("m", (tmp_path / "w").as_uri())
    client.set_registered_model_alias("m", "champion", "1")
    run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri()))
    np.save(tmp_path / "proba.npy", np.array([[0.9, 0.1], [0.2, 0.8]]))
    evaluation = Evaluation(
        metrics={"accuracy": 1.0, "macro_f1": 1.0, "test_rows": 2},
        per_class=[],
        slices=[],
        out_dir=str(tmp_path),
        probabilities=str(tmp_path / "proba.npy"),
        label_names=["a", "b"],
    )
    config = load_config(overrides=["registry.model_name=m", "promotion.bootstrap_samples=100"])
    frame = pd.DataFrame({"text": ["x", "y"], "label": ["a", "b"]})
    tracking = TrackingRun(tracking_uri=uri, run_id=run.info.run_id, experiment_id=run.info.experiment_id)
    return config, tracking, Splits("s", frame, frame.iloc[:0], frame), evaluation, Workspace(tmp_path / "ws")


def test_an_unreachable_store_fails_the_run_instead_of_the_gate(setup, monkeypatch):
    config, tracking, frame, evaluation, workspace = setup

    def unreachable(uri):
        raise ConnectionError("Max retries exceeded with url: /api/2.0/mlflow-artifacts")

    monkeypatch.setattr(scoring_model, "load_registered_model", lambda *args: unreachable(args[1]))
    with pytest.raises(ChampionUnavailableError, match="nothing registered"):
        evaluation_steps.compare_with_champion(config, workspace, tracking, evaluation, frame)


def test_a_broken_champion_model_still_only_fails_the_gate(setup, monkeypatch):
    config, tracking, frame, evaluation, workspace = setup
    monkeypatch.setattr(
        scoring_model, "load_registered_model", lambda *args: (_ for _ in ()).throw(ValueError("bad weights"))
    )
    outcome = evaluation_steps.compare_with_champion(config, workspace, tracking, evaluation, frame)
    assert not outcome.gate["passed"] and "bad weights" in outcome.comparison["error"]


def test_infrastructure_errors_are_told_apart_from_model_errors():
    import errno

    assert is_infrastructure_error(TimeoutError())
    assert is_infrastructure_error(OSError(errno.ENOSPC, "No space left on device"))
    wrapped = RuntimeError("load failed")
    wrapped.__cause__ = ConnectionRefusedError()
    assert is_infrastructure_error(wrapped)
    assert not is_infrastructure_error(ValueError("label map mismatch"))
    assert not is_infrastructure_error(FileNotFoundError(errno.ENOENT, "weights deleted"))
