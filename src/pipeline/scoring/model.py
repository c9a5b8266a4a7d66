"""Loading a registered version for scoring, without running the version's Python code.

The version's ``model_dir`` artifact (weights, tokenizer, ``pipeline.json``) is downloaded once into a
cache keyed by model name and version, then loaded with transformers; aliases are resolved at call time.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.atomic import staged_directory

logger = logging.getLogger(__name__)

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))$")


class ModelNotFoundError(LookupError):
    """The model URI names no registered version (unknown model, version or alias)."""


@dataclass(frozen=True)
class ModelRef:
    """A registered version, resolved: what predictions are stamped with."""

    model_name: str
    model_version: str
    run_id: str | None
    requested_uri: str
    snapshot_id: str | None = None

    @property
    def version_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"


@dataclass
class ScoringModel:
    """A loaded classifier: transformers model, fast tokenizer, ``max_length`` and the class names."""

    model: object
    tokenizer: object
    max_length: int
    labels: list[str]
    ref: ModelRef
    model_dir: Path
    meta: dict = field(default_factory=dict)
    # scoring.precision (auto, fp32, bf16), or "training": as training and evaluation compute (bf16 on CUDA only)
    precision: str = "training"

    @property
    def device(self):
        return next(self.model.parameters()).device


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` -> (name, alias, version); ValueError otherwise."""
    found = _REGISTRY_URI.match(model_uri.strip())
    if not found:
        raise ValueError(f"{model_uri!r} is not a registry URI: use models:/NAME@ALIAS or models:/NAME/VERSION")
    return found["name"], found["alias"], found["version"]


def resolve_model_ref(client, model_uri: str) -> ModelRef:
    """The version ``model_uri`` points to now (an alias is resolved live, never cached)."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(model_uri)
    try:
        found = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise ModelNotFoundError(f"{model_uri}: no such registered version ({exc.message})") from exc
        raise
    tags = dict(found.tags or {})
    return ModelRef(
        model_name=name,
        model_version=str(found.version),
        run_id=found.run_id,
        requested_uri=model_uri,
        snapshot_id=tags.get("snapshot_id"),
    )


def _cache_folder(cache_dir: Path, ref: ModelRef) -> Path:
    return Path(cache_dir) / re.sub(r"[^\w.-]+", "_", ref.model_name) / ref.model_version


def download_version(tracking_uri: str, ref: ModelRef, cache_dir: Path) -> Path:
    """The version's model folder, downloaded once into ``cache_dir`` (atomically: no half-downloaded folder)."""
    from pipeline.training.warm_start import download_model_dir

    final = _cache_folder(cache_dir, ref)
    if (final / "config.json").exists():
        return final
    if final.exists():
        shutil.rmtree(final)
    with staged_directory(final) as staging:
        downloaded = download_model_dir(tracking_uri, ref.version_uri, staging / "download")
        for child in downloaded.iterdir():
            shutil.move(str(child), staging / child.name)
        shutil.rmtree(staging / "download", ignore_errors=True)
    logger.info("downloaded %s into %s", ref.version_uri, final)
    return final


def load_model_folder(folder: Path, ref: ModelRef, device: str = "auto") -> ScoringModel:
    """Load a saved classifier folder (as training writes it) for inference, in eval mode on ``device``."""
    import torch
    from transformers import AutoTokenizer

    from pipeline.training.pooling import load_classifier

    folder = Path(folder)
    meta_path = folder / "pipeline.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{folder}: no fast tokenizer")
    chosen = torch.device(
        "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    )
    model = load_classifier(folder, dtype=torch.float32).eval().to(chosen)  # with the head it was trained with
    id2label = model.config.id2label
    labels = [str(id2label[i]) for i in sorted(id2label)]
    max_length = int(meta.get("max_length") or min(tokenizer.model_max_length, 512))
    return ScoringModel(
        model=model, tokenizer=tokenizer, max_length=max_length, labels=labels, ref=ref, model_dir=folder, meta=meta
    )


def load_registered_model(tracking_uri: str, model_uri: str, cache_dir: Path, device: str = "auto") -> ScoringModel:
    """Resolve ``model_uri`` (``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``), download and load it.

    Only weights, tokenizer and ``pipeline.json`` are read: the version's Python code never runs.
    Raises ModelNotFoundError for an unknown model, version or alias.
    """
    from pipeline.registry import tracking as registry

    ref = resolve_model_ref(registry.client(tracking_uri), model_uri)
    folder = download_version(tracking_uri, ref, Path(cache_dir))
    loaded = load_model_folder(folder, ref, device)
    if ref.snapshot_id is None and loaded.meta.get("snapshot_id"):
        loaded.ref = ModelRef(
            ref.model_name, ref.model_version, ref.run_id, ref.requested_uri, loaded.meta["snapshot_id"]
        )
    return loaded


def predict_probabilities(scoring: ScoringModel, input_ids: list[np.ndarray], batch_size: int) -> np.ndarray:
    """Class probabilities (rows, classes): length-sorted batches, dynamic padding, inference mode."""
    from pipeline.training.inference import predict_proba

    if not input_ids:
        return np.zeros((0, len(scoring.labels)), dtype=np.float32)
    bf16, cpu_bf16 = precision_flags(scoring.precision)
    return predict_proba(
        scoring.model, input_ids, scoring.tokenizer.pad_token_id, batch_size, scoring.device, bf16, cpu_bf16
    )


def precision_flags(precision: str) -> tuple[bool, bool]:
    """(bf16 on CUDA, bf16 on CPU) for a ``scoring.precision`` value."""
    from pipeline.training.inference import cpu_has_native_bf16

    if precision == "fp32":
        return False, False
    if precision == "bf16":
        return True, True
    if precision == "training":
        return True, False
    return True, cpu_has_native_bf16()


def compute_precision(scoring: ScoringModel) -> str:
    """What the model computes in on its device: ``bf16`` or ``fp32``."""
    cuda, cpu = precision_flags(scoring.precision)
    return "bf16" if (cuda if scoring.device.type == "cuda" else cpu) else "fp32"
