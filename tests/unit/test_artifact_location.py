"""Where a new MLflow experiment keeps its artifacts, for each kind of tracking URI."""

import pytest

from pipeline.config import load_config
from pipeline.registry.tracking import experiment_artifact_location

ROOT = "file:///srv/ws/mlflow/artifacts"


@pytest.mark.parametrize(
    "uri",
    [
        "sqlite:////srv/ws/mlflow/mlflow.db",
        "postgresql://mlflow@db:5432/mlflow",
        "postgresql+psycopg://mlflow@db/mlflow",
        "mysql+pymysql://mlflow@db/mlflow",
        "mssql+pyodbc://mlflow@db/mlflow",
    ],
)
def test_a_database_store_gets_the_workspace_artifact_root_not_the_process_folder(uri):
    assert experiment_artifact_location(uri, None, ROOT) == ROOT


@pytest.mark.parametrize(
    "uri", ["http://mlflow:5000", "https://mlflow.example.com", "databricks", "file:///srv/mlruns", "/srv/mlruns"]
)
def test_a_server_or_file_store_decides_for_itself(uri):
    assert experiment_artifact_location(uri, None, ROOT) is None


@pytest.mark.parametrize("uri", ["postgresql://mlflow@db/mlflow", "http://mlflow:5000"])
def test_a_configured_location_wins(uri):
    assert experiment_artifact_location(uri, "s3://bucket/mlflow", ROOT) == "s3://bucket/mlflow"


def test_the_location_is_a_configuration_key():
    config = load_config(overrides=["tracking.artifact_location=s3://team-bucket/mlflow"], environ={})
    assert config.tracking.artifact_location == "s3://team-bucket/mlflow"
    from_env = load_config(environ={"PIPELINE__TRACKING__ARTIFACT_LOCATION": "gs://b/m"})
    assert from_env.tracking.artifact_location == "gs://b/m"


def test_one_run_does_not_choose_the_next_runs_tracking_store(tmp_path, monkeypatch):
    """A long-lived worker runs flows of several workspaces; mlflow.set_tracking_uri exports
    MLFLOW_TRACKING_URI, which must not become the next workspace's default store."""
    import os

    from pipeline.registry.tracking import client
    from pipeline.workspace import Workspace

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first, second = Workspace(tmp_path / "a"), Workspace(tmp_path / "b")
    client(first.tracking_uri())
    assert second.tracking_uri() == second.default_tracking_uri() != first.tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    client(first.default_tracking_uri())
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000", "an operator's setting is kept"
