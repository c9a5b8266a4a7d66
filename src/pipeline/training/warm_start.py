"""Warm start: continue training from the current champion's weights instead of the base model.

The champion is resolved when the run starts (``models:/<name>@champion``, looked up live, never cached),
and the saved transformers folder that its pyfunc carries as artifact ``model_dir`` (see
``registry.log_model``) is downloaded and becomes the model source.

Policy when the champion does not fit this run, decided here once for every caller: train from the
base model (``model.name_or_path``) and say why, in the log and in the result (which the MLflow run
records as tag ``warm_start``). It falls back when:

- there is no champion yet;
- the champion was trained from another base model (its ``pipeline.json``): a different architecture or
  tokenizer is not a start;
- the champion's labels differ from this run's (names or ids). Its classifier rows would stand for
  other classes, and re-initialising only the head would keep an encoder tuned to the old label set
  while calling it a warm start. The data contract refuses new labels unless configured otherwise, so
  this happens only after a deliberate change of labels, where a clean start is the honest choice.

A registry that cannot be reached or a champion whose files are missing is an error, not a fallback:
the user asked for a warm start.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
MODEL_DIR_ARTIFACT = "model_dir"


@dataclass(frozen=True)
class WarmStart:
    """What to load: ``source`` (a folder or the base model name) and where it came from."""

    source: str
    champion_uri: str | None
    reason: str

    @property
    def warm(self) -> bool:
        return self.champion_uri is not None

    def tag(self) -> str:
        return self.champion_uri if self.warm else f"none: {self.reason}"


def champion_version(mlflow_client, model_name: str):
    """The model version the champion alias points to now, or None when there is no champion."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def download_model_dir(tracking_uri: str, model_uri: str, destination: Path) -> Path:
    """Download the ``model_dir`` artifact of a logged pyfunc (``models:/name/version``) to ``destination``.

    Raises FileNotFoundError when the model carries no such artifact.
    """
    import mlflow.artifacts

    destination.mkdir(parents=True, exist_ok=True)
    mlmodel = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model_uri}/MLmodel", dst_path=str(destination), tracking_uri=tracking_uri
    )
    spec = yaml.safe_load(Path(mlmodel).read_text())
    artifacts = spec.get("flavors", {}).get("python_function", {}).get("artifacts") or {}
    if MODEL_DIR_ARTIFACT not in artifacts:
        raise FileNotFoundError(
            f"{model_uri} has no '{MODEL_DIR_ARTIFACT}' artifact: it was not logged by this pipeline"
        )
    relative = artifacts[MODEL_DIR_ARTIFACT]["path"]
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{model_uri}/{relative}", dst_path=str(destination), tracking_uri=tracking_uri
    )
    return Path(local)


def champion_labels(model_dir: Path) -> dict[str, int]:
    config = json.loads((model_dir / "config.json").read_text())
    return {str(label): int(i) for label, i in (config.get("label2id") or {}).items()}


def champion_base_model(model_dir: Path) -> str | None:
    meta = model_dir / "pipeline.json"
    return json.loads(meta.read_text()).get("base_model") if meta.exists() else None


def resolve_warm_start(
    tracking_uri: str, model_name: str, base_model: str, label_map: dict[str, int], download_dir: Path
) -> WarmStart:
    """Where this run's weights come from: the champion's folder when it fits, else ``base_model``."""
    from pipeline.registry import tracking as registry

    mlflow_client = registry.client(tracking_uri)
    version = champion_version(mlflow_client, model_name)
    if version is None:
        return _fallback(base_model, f"model {model_name!r} has no champion yet")
    uri = f"models:/{model_name}/{version.version}"
    folder = download_model_dir(tracking_uri, uri, download_dir)
    champion_base = champion_base_model(folder)
    if champion_base is not None and champion_base != base_model:
        return _fallback(base_model, f"champion {uri} was trained from {champion_base!r}, not {base_model!r}")
    labels = champion_labels(folder)
    if labels != {str(k): int(v) for k, v in label_map.items()}:
        added, removed = sorted(set(label_map) - set(labels)), sorted(set(labels) - set(label_map))
        return _fallback(
            base_model,
            f"champion {uri} has other labels (new: {added[:5]}, gone: {removed[:5]}"
            f"{', or other ids' if not added and not removed else ''})",
        )
    logger.info("warm start from champion %s (%s)", uri, folder)
    return WarmStart(source=str(folder), champion_uri=uri, reason="champion fits")


def _fallback(base_model: str, reason: str) -> WarmStart:
    logger.warning("warm start requested but training from the base model %s: %s", base_model, reason)
    return WarmStart(source=base_model, champion_uri=None, reason=reason)
