"""What each stage hands to the next: small frozen values with no behaviour beyond ``to_dict``.

The training flow reads as typed data flow: ``DataOutcome`` -> ``Splits`` -> ``TokenizedData`` ->
``TrackingRun`` -> ``TrainedModel`` -> ``Evaluation`` -> ``Comparison`` -> ``Registration``.
Nested reports (per-class tables, gate checks, statistics) stay plain dicts: they are rendered and logged
as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


class NoDataError(RuntimeError):
    """There is no labeled data to train on."""


class _Result:
    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON, artifacts and the CLI (data frames and loaded objects left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("serialise", True)}


def _opaque(**kwargs):
    """A field that ``to_dict`` leaves out (frames, tokenizers)."""
    return field(metadata={"serialise": False}, **kwargs)


@dataclass(frozen=True)
class DataOutcome(_Result):
    """What an ingest did: the snapshot it left as head and what happened to each file."""

    snapshot_id: str | None
    new_files: list[str]
    skipped_files: list[dict]
    quarantined: list[dict]
    rows_added: int
    snapshot_changed: bool
    contracts: dict[str, dict] = field(default_factory=dict)
    duplicates_dropped: int = 0
    conflict_rows: int = 0
    net_rows_added: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Splits(_Result):
    """Train, validation and frozen test frames of one snapshot."""

    snapshot_id: str
    train: Any = _opaque()
    validation: Any = _opaque()
    test: Any = _opaque()

    def frames(self) -> dict[str, Any]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


@dataclass(frozen=True)
class TokenizedData(_Result):
    """The tokenizer, the label map and each split's token ids (content-cached)."""

    snapshot_id: str
    label_map: dict[str, int]
    tokenizer: Any = _opaque()
    splits: dict[str, Any] = _opaque(default_factory=dict)


@dataclass(frozen=True)
class TrackingRun(_Result):
    """The MLflow run that records one training."""

    tracking_uri: str
    run_id: str
    experiment_id: str


@dataclass(frozen=True)
class TrainedModel(_Result):
    """The fine-tuned model saved under ``runs/<run_id>/model`` and how the training went."""

    model_dir: str
    snapshot_id: str
    history: list[dict]
    steps: int
    planned_steps: int
    resumed_from_step: int | None
    samples_per_s: float
    train_seconds: float
    device: str
    best_epoch: int | None
    stopped_early: bool
    train_rows: int
    warm_start: str | None
    sample_counts: str
    world_size: int = 1

    def summary(self) -> dict[str, Any]:
        """The few numbers a caller prints."""
        return {
            k: getattr(self, k)
            for k in ("steps", "samples_per_s", "train_seconds", "device", "best_epoch", "world_size")
        }


@dataclass(frozen=True)
class Evaluation(_Result):
    """Test-split metrics of the trained model; the probabilities are saved as ``probabilities``."""

    metrics: dict[str, float]
    per_class: list[dict]
    slices: list[dict]
    out_dir: str
    probabilities: str
    label_names: list[str]
    dataset: Any = _opaque(default=None)


@dataclass(frozen=True)
class Comparison(_Result):
    """The candidate against the live champion on the same test split, and the gate's decision."""

    model_name: str
    primary_metric: str
    candidate: dict
    champion: dict | None
    comparison: dict | None
    gate: dict
    test_rows: int | None
    test_split_digest: str
    compared_at: str
    policy: dict
    report: str = ""


@dataclass(frozen=True)
class Registration(_Result):
    """The registered model version, the aliases it holds and its model card."""

    model_name: str
    model_version: str
    model_uri: str
    aliases: list[str]
    gate: dict
    promotion_note: str | None
    model_card: str
    model_id: str | None = None


def training_summary(
    data: DataOutcome, tracking: TrackingRun, trained: TrainedModel, evaluation: Evaluation, registration: Registration
) -> dict[str, Any]:
    """What the training flow returns (and ``pipeline run --json`` prints)."""
    return {
        "status": "completed",
        "run_id": tracking.run_id,
        "tracking_uri": tracking.tracking_uri,
        "snapshot_id": data.snapshot_id,
        "new_files": data.new_files,
        **registration.to_dict(),
        "metrics": evaluation.metrics,
        "resumed_from_step": trained.resumed_from_step,
        "training": trained.summary(),
    }


@dataclass(frozen=True)
class RetrainingCheck(_Result):
    """Whether a retraining run trains, why, and what arrived since the last training."""

    train: bool
    reason: str
    new_data: dict
