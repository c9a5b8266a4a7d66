"""An empty, migrated MLflow SQLite store made once per session; tests copy it (migrations take seconds)."""

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def migrated_registry_db(tmp_path_factory) -> Path:
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("registry-template") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(uri, registry_uri=uri).search_registered_models()
    return path


def fresh_registry_uri(template: Path, folder: Path) -> str:
    """A private copy of the migrated store under ``folder``; returns its URI."""
    target = folder / "registry.db"
    shutil.copy(template, target)
    return f"sqlite:///{target}"
