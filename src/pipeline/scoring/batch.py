"""Scoring a stream of chunks into a predictions file, keeping bounded samples for drift and to-label."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.config import ScoringConfig
from pipeline.scoring import to_label
from pipeline.scoring.model import ScoringModel
from pipeline.scoring.scorer import score_chunk
from pipeline.scoring.writer import PredictionWriter, join_predictions

logger = logging.getLogger(__name__)


@dataclass
class StreamResult:
    rows: int = 0
    label_counts: Counter = field(default_factory=Counter)
    confidence_sum: float = 0.0
    features: pd.DataFrame | None = None
    candidates: pd.DataFrame | None = None

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.rows if self.rows else None


def _keep_sample(kept: pd.DataFrame | None, chunk: pd.DataFrame, limit: int, rng: np.random.Generator) -> pd.DataFrame:
    """A uniform sample of at most ``limit`` rows over all chunks seen (smallest random keys win)."""
    chunk = chunk.assign(_key=rng.random(len(chunk)))
    merged = chunk if kept is None else pd.concat([kept, chunk], ignore_index=True)
    return merged if len(merged) <= limit else merged.nsmallest(limit, "_key").reset_index(drop=True)


def score_stream(
    scoring: ScoringModel,
    chunks: Iterable[pd.DataFrame],
    text_column: str,
    writer: PredictionWriter,
    config: ScoringConfig,
    seen_tokens: np.ndarray | None = None,
    to_label_rows: int = 0,
    seed: int = 0,
) -> StreamResult:
    """Score every chunk, append ``input columns + predictions`` to ``writer``; memory stays bounded by the chunk
    size, ``scoring.drift_sample_rows`` and ``to_label_rows``."""
    result = StreamResult()
    rng = np.random.default_rng(seed)
    for chunk in chunks:
        texts = chunk[text_column].tolist()
        scored = score_chunk(scoring, texts, config.batch_size, config.top_k, seen_tokens)
        writer.write(join_predictions(chunk, scored.predictions))
        features = scored.features
        result.rows += len(chunk)
        result.label_counts.update(features["label"].tolist())
        result.confidence_sum += float(features["confidence"].sum())
        if config.drift:
            result.features = _keep_sample(result.features, features, config.drift_sample_rows, rng)
        if to_label_rows > 0:
            offset = result.rows - len(chunk)
            candidates = pd.DataFrame(
                {
                    "text": texts,
                    "row": np.arange(offset + 1, offset + len(chunk) + 1),
                    "model_label": features["label"].to_numpy(),
                    "model_score": features["confidence"].to_numpy(),
                    "uncertainty": to_label.uncertainty_score(features, config.to_label_strategy),
                }
            )
            result.candidates = to_label.keep_candidates(
                result.candidates, candidates, to_label_rows * to_label.CANDIDATE_FACTOR
            )
        logger.info("scored %d rows", result.rows)
    if result.features is not None:
        result.features = result.features.drop(columns="_key")
    return result
