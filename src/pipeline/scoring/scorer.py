"""Scoring one chunk of texts: tokenize once, predict, and derive the per-text statistics drift needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.scoring.model import ScoringModel, predict_probabilities
from pipeline.training.tokenization import tokenize_texts

PREDICTION_COLUMNS = ("label", "score", "top_labels", "top_scores", "model_name", "model_version", "model_run_id")
FEATURE_COLUMNS = (
    "chars",
    "tokens",
    "unknown_share",
    "over_max_length",
    "unseen_share",
    "label",
    "confidence",
    "margin",
    "entropy",
)


@dataclass
class ScoredChunk:
    """Predictions aligned with the input rows, and per-row statistics (for drift and to-label selection)."""

    predictions: pd.DataFrame
    features: pd.DataFrame


def tokenize_for_scoring(tokenizer, texts: list[str], max_length: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(ids truncated to ``max_length``, whether each text was longer than ``max_length`` tokens)."""
    ids = tokenize_texts(tokenizer, texts, max_length + 1)
    over = np.fromiter((len(x) > max_length for x in ids), dtype=bool, count=len(ids))
    if over.any():
        where = np.flatnonzero(over)
        redone = tokenize_texts(tokenizer, [texts[i] for i in where], max_length)
        for position, row in enumerate(where):
            ids[row] = redone[position]
    return ids, over


def token_statistics(tokenizer, ids: list[np.ndarray], seen_tokens: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per text: word pieces (specials excluded), unknown-token share, share of pieces the reference never saw."""
    specials = np.array(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)
    unk = tokenizer.unk_token_id
    tokens = np.zeros(len(ids), dtype=np.int64)
    unknown = np.zeros(len(ids), dtype=np.float64)
    unseen = np.full(len(ids), np.nan)
    for row, seq in enumerate(ids):
        body = seq[~np.isin(seq, specials)] if len(specials) else seq
        tokens[row] = len(body)
        if len(body):
            unknown[row] = float(np.count_nonzero(body == unk)) / len(body) if unk is not None else 0.0
            if seen_tokens is not None:
                inside = body[body < len(seen_tokens)]
                unseen[row] = 1.0 - (np.count_nonzero(seen_tokens[inside]) / len(body))
    return {"tokens": tokens, "unknown_share": unknown, "unseen_share": unseen}


def uncertainty(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(margin between the two most likely classes, entropy in nats) per row."""
    if proba.shape[1] < 2:
        return np.ones(len(proba)), np.zeros(len(proba))
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    entropy = -(proba * np.log(np.clip(proba, 1e-12, 1.0))).sum(axis=1)
    return top2[:, 0] - top2[:, 1], entropy


def score_chunk(
    scoring: ScoringModel, texts: list[str], batch_size: int, top_k: int = 0, seen_tokens: np.ndarray | None = None
) -> ScoredChunk:
    """Predict ``texts`` (in order) and collect the statistics of each text."""
    ids, over = tokenize_for_scoring(scoring.tokenizer, texts, scoring.max_length)
    proba = predict_probabilities(scoring, ids, batch_size)
    labels = np.asarray(scoring.labels, dtype=object)
    best = proba.argmax(axis=1) if len(proba) else np.zeros(0, dtype=np.int64)
    confidence = proba[np.arange(len(proba)), best].astype(np.float64)
    ref = scoring.ref
    predictions = pd.DataFrame(
        {"label": labels[best].astype(str) if len(best) else pd.Series([], dtype=str), "score": confidence}
    )
    if top_k > 0:
        k = min(top_k, proba.shape[1])
        order = np.argsort(-proba, axis=1)[:, :k]
        predictions["top_labels"] = [list(labels[row]) for row in order]
        predictions["top_scores"] = [[float(v) for v in proba[r, row]] for r, row in enumerate(order)]
    predictions["model_name"] = ref.model_name
    predictions["model_version"] = ref.model_version
    predictions["model_run_id"] = ref.run_id or ""
    margin, entropy = uncertainty(proba)
    stats = token_statistics(scoring.tokenizer, ids, seen_tokens)
    features = pd.DataFrame(
        {
            "chars": np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)),
            **stats,
            "over_max_length": over.astype(np.float64),
            "label": predictions["label"].to_numpy(),
            "confidence": confidence,
            "margin": margin,
            "entropy": entropy,
        }
    )
    return ScoredChunk(predictions=predictions, features=features[list(FEATURE_COLUMNS)])
