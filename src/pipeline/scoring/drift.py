"""Drift of scored texts against the model's training snapshot, judged by the ``scoring_drift`` GX suite.

The reference (statistics of a sample of the training snapshot, scored by the same model) is built once
per model version and stored with it; each batch's per-text statistics are then checked against
thresholds derived from it, at a warning and an error level.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from pipeline.config import DataConfig, ScoringConfig
from pipeline.scoring.model import ScoringModel

logger = logging.getLogger(__name__)

SUITE = "scoring_drift"
REFERENCE_VERSION = 1
VOCABULARY_SHARE = 0.8
OK, WARNING, ERROR, SKIPPED = "ok", "warning", "error", "skipped"


@dataclass
class DriftReport:
    """``status``: ok, warning, error or skipped (with ``reason``); ``checks`` as the data contract reports them."""

    status: str
    reason: str
    rows: int
    observed: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def findings(self) -> list[dict]:
        return [c for c in self.checks if not c["success"]]


def seen_token_mask(reference: dict, vocab_size: int) -> np.ndarray | None:
    ids = reference.get("seen_tokens")
    if ids is None:
        return None
    mask = np.zeros(max(vocab_size, max(ids, default=0) + 1), dtype=bool)
    mask[np.asarray(ids, dtype=np.int64)] = True
    return mask


def summarise_features(features: pd.DataFrame) -> dict:
    """The statistics the drift checks judge, as plain numbers."""
    labels = features["label"].astype(str).value_counts(normalize=True).sort_index()
    return {
        "rows": int(len(features)),
        "tokens_mean": float(features["tokens"].mean()),
        "chars_mean": float(features["chars"].mean()),
        "unknown_share": float(features["unknown_share"].mean()),
        "unseen_share": (
            float(np.nanmean(features["unseen_share"])) if features["unseen_share"].notna().any() else None
        ),
        "over_max_length_share": float(features["over_max_length"].mean()),
        "confidence_mean": float(features["confidence"].mean()),
        "label_distribution": {str(k): round(float(v), 4) for k, v in labels.items()},
    }


def build_reference(
    scoring: ScoringModel,
    snapshot_frame: pd.DataFrame,
    label_counts: dict[str, int],
    data_config: DataConfig,
    sample_rows: int,
    batch_size: int,
    seed: int = 0,
) -> dict:
    """Statistics of a seeded sample of the training snapshot, scored by ``scoring``.

    The word-piece vocabulary comes from 80% of the sample and the unseen share is measured on the other
    20%, so the reference level is what a new batch from the same distribution shows. Confidence is
    measured on validation and test rows when there are enough (the model trained on the rest). The label
    reference is the model's own predicted-label mix on the sample (close to the training labels for a good
    model), so a batch is judged against what the model predicts on training-like texts, not its accuracy.
    """
    from pipeline.data.splits import assign_splits
    from pipeline.scoring.scorer import score_chunk

    texts = snapshot_frame["text"].dropna().astype(str)
    sample = texts.sample(n=min(sample_rows, len(texts)), random_state=seed).reset_index(drop=True)
    cut = max(1, int(len(sample) * VOCABULARY_SHARE))
    vocab_part = score_chunk(scoring, sample[:cut].tolist(), batch_size)
    seen_ids = sorted({int(i) for ids in _token_ids(scoring, sample[:cut].tolist()) for i in ids})
    mask = np.zeros(max(len(scoring.tokenizer), max(seen_ids, default=0) + 1), dtype=bool)
    mask[seen_ids] = True
    held = score_chunk(scoring, sample[cut:].tolist(), batch_size, seen_tokens=mask) if cut < len(sample) else None
    features = pd.concat([vocab_part.features] + ([held.features] if held is not None else []), ignore_index=True)
    splits = assign_splits(sample, data_config.validation_share, data_config.test_share, data_config.split_salt)
    unseen_on_training = features["confidence"][(splits != "train").to_numpy()]
    confidence = unseen_on_training if len(unseen_on_training) >= 50 else features["confidence"]
    total = sum(label_counts.values()) or 1
    summary = summarise_features(features)
    summary.update(
        {
            "version": REFERENCE_VERSION,
            "max_length": scoring.max_length,
            "sample_rows": int(len(sample)),
            "tokens_std": float(features["tokens"].std(ddof=0)),
            "unseen_share": float(held.features["unseen_share"].mean()) if held is not None else 0.0,
            "confidence_mean": float(confidence.mean()),
            "training_label_distribution": {str(k): v / total for k, v in sorted(label_counts.items())},
            "label_distribution": _predicted_distribution(features["label"], scoring.labels),
            "seen_tokens": seen_ids,
        }
    )
    return summary


def _predicted_distribution(labels: pd.Series, classes: list[str]) -> dict[str, float]:
    """Predicted-label shares on the reference sample; every class gets a small floor so KL stays finite."""
    counts = labels.astype(str).value_counts()
    floor = 0.5 / max(len(labels), 1)
    shares = {c: max(counts.get(c, 0) / max(len(labels), 1), floor) for c in classes}
    total = sum(shares.values())
    return {c: v / total for c, v in shares.items()}


def _token_ids(scoring: ScoringModel, texts: list[str]):
    from pipeline.training.tokenization import tokenize_texts

    return tokenize_texts(scoring.tokenizer, texts, scoring.max_length)


def drift_parameters(reference: dict, config: ScoringConfig) -> dict:
    """Suite parameters: warning and error bounds around the reference statistics."""
    params = {
        "label_partition": {
            "values": list(reference["label_distribution"]),
            "weights": list(reference["label_distribution"].values()),
        }
    }
    for level in ("warning", "error"):
        ratio = getattr(config, f"length_ratio_{level}")
        params[f"tokens_mean_min_{level}"] = reference["tokens_mean"] / ratio
        params[f"tokens_mean_max_{level}"] = reference["tokens_mean"] * ratio
        params[f"unknown_share_max_{level}"] = reference["unknown_share"] + getattr(config, f"unknown_share_{level}")
        params[f"unseen_share_max_{level}"] = reference["unseen_share"] + getattr(config, f"unseen_share_{level}")
        params[f"over_max_length_max_{level}"] = reference["over_max_length_share"] + getattr(
            config, f"over_max_length_{level}"
        )
        params[f"confidence_min_{level}"] = reference["confidence_mean"] - getattr(config, f"confidence_drop_{level}")
        params[f"label_kl_{level}"] = getattr(config, f"label_kl_{level}")
    return params


def check_drift(features: pd.DataFrame, reference: dict | None, config: ScoringConfig) -> DriftReport:
    """Judge a batch's per-text statistics against ``reference``; never raises on drifted data."""
    from pipeline.validation.contract import load_suite_dict, run_contract

    shown = {k: v for k, v in (reference or {}).items() if k != "seen_tokens"}
    if reference is None:
        return DriftReport(
            SKIPPED,
            "no drift reference for this model version (its training snapshot is not in this workspace)",
            len(features),
        )
    if len(features) < config.drift_min_rows:
        return DriftReport(
            SKIPPED,
            f"{len(features)} rows, fewer than scoring.drift_min_rows={config.drift_min_rows}",
            len(features),
            summarise_features(features) if len(features) else {},
            shown,
        )
    frame = features.assign(unseen_share=features["unseen_share"].fillna(0.0))
    result = run_contract(frame, load_suite_dict(SUITE), drift_parameters(reference, config))
    levels = {c["rule"].rsplit("_", 1)[0] for c in result.failures}
    warned = {c["rule"].rsplit("_", 1)[0] for c in result.warnings} - levels
    status = ERROR if result.failures else WARNING if result.warnings else OK
    reason = (
        "no drift"
        if status == OK
        else "; ".join(
            filter(
                None,
                [
                    f"error: {', '.join(sorted(levels))}" if levels else "",
                    f"warning: {', '.join(sorted(warned))}" if warned else "",
                ],
            )
        )
    )
    return DriftReport(status, reason, len(features), summarise_features(features), shown, result.checks)
