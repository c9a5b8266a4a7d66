"""MLflow tracking and the Model Registry: runs, lineage, the pyfunc model and its aliases.

The promotion policy lives in ``pipeline.registry.gate`` (the gate) and ``pipeline.registry.aliases`` (moves that
cannot race, with their audit history). Aliases are resolved at call time, never cached, so a
promotion made by hand in the MLflow UI is what the next run sees.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC
from importlib import metadata
from pathlib import Path

import pandas as pd

from pipeline.data.sources import file_sha256

logger = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
MODEL_CODE = Path(__file__).parent / "pyfunc.py"
MAX_PARAM_LENGTH = 500


def flatten(prefix: str, value, out: dict | None = None) -> dict:
    """Nested dict to ``a.b.c`` keys (what MLflow params and tags want)."""
    out = {} if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value
    return out


def client(tracking_uri: str):
    """An MlflowClient for ``tracking_uri`` (tracking and registry); HTTP deadlines are in force first."""
    import mlflow
    from mlflow import MlflowClient

    from pipeline.registry.connection import apply_http_deadlines

    apply_http_deadlines()  # built-in deadlines where neither the configuration nor the environment set any
    # set_tracking_uri exports MLFLOW_TRACKING_URI: left as it was, so a worker's next run keeps its own default
    exported = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    if exported is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = exported
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


# Tracking URIs served by a tracking server: the server decides where artifacts go (proxied or direct).
SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")


def experiment_artifact_location(tracking_uri: str, configured: str | None, workspace_root: str) -> str | None:
    """Where a new experiment keeps its artifacts.

    ``configured`` wins (any URI MLflow can write: ``s3://``, ``gs://``, ``file://``). A tracking server decides
    for itself (None). A database store (``sqlite:``, ``postgresql:``, ``mysql:``, ``mssql:``) opened directly
    would otherwise put them in ``./mlruns`` of whichever process created the experiment, so it gets
    ``workspace_root``; a ``file:`` store keeps them beside its runs (None).
    """
    if configured:
        return configured
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower() if ":" in tracking_uri else "file"
    if scheme in SERVER_SCHEMES or scheme == "file":
        return None
    return workspace_root


def ensure_experiment(mlflow_client, name: str, artifact_location: str | None) -> str:
    """Experiment id, creating it (artifacts under ``artifact_location`` for a local store) if needed."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(name, artifact_location=artifact_location)


def start_run(mlflow_client, experiment_id: str, run_name: str, params: dict, tags: dict) -> str:
    run = mlflow_client.create_run(experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
    log_params(mlflow_client, run.info.run_id, params)
    return run.info.run_id


def log_params(mlflow_client, run_id: str, params: dict) -> None:
    from mlflow.entities import Param

    items = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in sorted(flatten("", params).items())]
    for start in range(0, len(items), 100):
        mlflow_client.log_batch(run_id, params=items[start : start + 100])


def log_metrics(mlflow_client, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """All metrics in one ``log_batch`` call (one request, not one per metric)."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
    for start in range(0, len(items), 1000):
        mlflow_client.log_batch(run_id, metrics=items[start : start + 1000])


def log_metric_series(mlflow_client, run_id: str, records: list[dict], step_key: str) -> None:
    """Log a list of records (e.g. per-step loss) as metric histories in batched calls."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(k, float(v), now, int(r[step_key]))
        for r in records
        for k, v in r.items()
        if k != step_key and isinstance(v, (int, float)) and v is not None
    ]
    for start in range(0, len(items), 1000):
        mlflow_client.log_batch(run_id, metrics=items[start : start + 1000])


def log_dataset(run_id: str, frame: pd.DataFrame, name: str, source: str, context: str) -> dict:
    """Record a data set (its digest and schema) as an input of the run; returns ``{name, digest}``.

    Through the client, not ``with mlflow.start_run(...)``: leaving that block would mark the run
    FINISHED while it is still training (and a killed run would then look finished).
    """
    import mlflow
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    dataset = mlflow.data.from_pandas(frame[["text", "label"]], source=source, name=name)
    entry = DatasetInput(Dataset(**dataset.to_dict()), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
    mlflow.MlflowClient().log_inputs(run_id, datasets=[entry])
    return {"name": dataset.name, "digest": dataset.digest}


def log_model_metrics(
    mlflow_client, run_id: str, model_id: str, metrics: dict[str, float], dataset: dict | None = None
) -> None:
    """Metrics of a logged model (MLflow 3: they show on the Logged Models page and in ``search_logged_models``),
    tied to the evaluation data set ``{name, digest}`` when given."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    name, digest = (dataset["name"], dataset["digest"]) if dataset else (None, None)
    items = [
        Metric(k, float(v), now, 0, model_id=model_id, dataset_name=name, dataset_digest=digest)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and v is not None
    ]
    for start in range(0, len(items), 1000):
        mlflow_client.log_batch(run_id, metrics=items[start : start + 1000])


def model_id_of(model_uri: str | None) -> str | None:
    """The logged model id in a ``models:/m-...`` URI, else None."""
    remainder = (model_uri or "").removeprefix("models:/") if (model_uri or "").startswith("models:/") else ""
    return remainder if remainder and "/" not in remainder else None


def end_run(mlflow_client, run_id: str, status: str = "FINISHED") -> None:
    mlflow_client.set_terminated(run_id, status=status)


def code_version() -> str:
    """git commit of the working tree when available (``+dirty`` when tracked files differ from it),
    else the installed package version."""
    import subprocess

    here = Path(__file__).parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here
        ).stdout.strip()
        if commit:
            dirty = (
                subprocess.run(
                    ["git", "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=10, cwd=here
                ).returncode
                == 1
            )
            return f"git:{commit}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"package:{metadata.version('textclf-pipeline')}"
    except metadata.PackageNotFoundError:
        return "unknown"


def pinned_requirements() -> list[str]:
    wanted = ["mlflow", "torch", "transformers", "pandas", "numpy", "tokenizers", "safetensors"]
    out = []
    for name in wanted:
        try:
            version = metadata.version(name).split("+")[0]
            out.append(f"{name}=={version}")
        except metadata.PackageNotFoundError:
            out.append(name)
    return out


def log_model(run_id: str, model_dir: Path, input_example: list[str]) -> str:
    """Log the trained model as a models-from-code pyfunc; returns the model URI."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    # One unnamed string column: a plain list of texts and a DataFrame with a ``text`` column both pass
    # MLflow's schema enforcement (a named column would refuse lists).
    signature = ModelSignature(
        inputs=Schema([ColSpec(DataType.string)]),
        outputs=Schema([ColSpec(DataType.string, "label"), ColSpec(DataType.double, "score")]),
    )
    example = pd.DataFrame({"text": input_example})
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"model_dir": str(model_dir)},
            signature=signature,
            input_example=example,
            pip_requirements=pinned_requirements(),
        )
    # Leaving ``start_run`` marked the run FINISHED; it is not finished until its version is registered.
    mlflow.MlflowClient().update_run(run_id, status="RUNNING")
    return info.model_uri


def register_version(mlflow_client, model_uri: str, name: str, run_id: str, tags: dict, description: str):
    """Create the registered model if needed and a new version from ``model_uri``."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(
            name, description="Text classifier trained by the continuous fine-tuning pipeline."
        )
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    # A logged model's URI (``models:/m-...``) must travel with its id, or a tracking server refuses it.
    version = mlflow_client.create_model_version(
        name,
        model_uri,
        run_id=run_id,
        tags={k: str(v) for k, v in tags.items()},
        description=description,
        model_id=model_id_of(model_uri),
    )
    return version


def alias_version(mlflow_client, name: str, alias: str) -> str | None:
    """The version an alias points to now, or None (resolved live on every call)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow_client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "INVALID_PARAMETER_VALUE" in str(exc.error_code):
            return None
        raise


def aliases_of(mlflow_client, name: str, version: str) -> list[str]:
    return sorted(mlflow_client.get_model_version(name, version).aliases)


def load_version(model_uri: str):
    """Load a registered version (``models:/NAME/VERSION``) as a pyfunc; downloads its artifacts."""
    import mlflow

    return mlflow.pyfunc.load_model(model_uri)


def predict_with(model, texts: list[str]) -> tuple[list[str], list[float], list[str] | None]:
    """(labels, scores, the classes the model knows or None) for ``texts`` with a loaded pyfunc."""
    out = model.predict(pd.DataFrame({"text": texts}))
    known = None
    inner = getattr(model, "unwrap_python_model", lambda: None)()
    config = getattr(getattr(inner, "model", None), "config", None)
    if config is not None and getattr(config, "id2label", None):
        known = [str(config.id2label[i]) for i in sorted(config.id2label)]
    return out["label"].astype(str).tolist(), out["score"].astype(float).tolist(), known


def collect_lineage(mlflow_client, run_id: str, model_dir: Path, manifest_path: Path, base_model: str) -> dict:
    """Where a model came from: run, data snapshot and its digests, code, base model, labels, training."""
    from datetime import datetime

    run = mlflow_client.get_run(run_id)
    meta_path = Path(model_dir) / "pipeline.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    return {
        "source_run": run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "snapshot_id": tags.get("snapshot_id") or meta.get("snapshot_id"),
        "snapshot_sha256": tags.get("snapshot_digest") or manifest.get("content_sha256"),
        "manifest_sha256": file_sha256(str(manifest_path)) if manifest_path.exists() else None,
        "snapshot_rows": manifest.get("rows"),
        "code_version": code_version(),
        "base_model": base_model,
        "label_map": meta.get("label_map", {}),
        "max_length": meta.get("max_length"),
        "method": params.get("model.method"),
        "device": tags.get("device"),
        "optimizer_steps": metrics.get("optimizer_steps"),
        "train_seconds": metrics.get("train_seconds"),
        "epochs": params.get("training.epochs"),
        "learning_rate": params.get("training.learning_rate"),
        "trained_at": datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(timespec="seconds"),
    }


def write_model_meta(model_dir: Path, meta: dict) -> None:
    (model_dir / "pipeline.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
