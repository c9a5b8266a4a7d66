"""Picking the texts the model is least sure of, for labelling next (active learning, uncertainty sampling)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipeline.data.readers import normalise_text

CANDIDATE_FACTOR = 5
_NOISE = re.compile(r"[^\w]+|\d+|_")


def near_duplicate_key(text: str) -> str:
    """Texts that differ only in case, spacing, punctuation or numbers share a key."""
    return " ".join(_NOISE.sub(" ", normalise_text(text)).split())


def uncertainty_score(features: pd.DataFrame, strategy: str) -> np.ndarray:
    """Higher is less sure: negative top-2 margin, or entropy."""
    if strategy == "entropy":
        return features["entropy"].to_numpy(dtype=np.float64)
    if strategy == "margin":
        return -features["margin"].to_numpy(dtype=np.float64)
    raise ValueError(f"unknown to-label strategy {strategy!r}: expected margin or entropy")


def keep_candidates(candidates: pd.DataFrame | None, chunk: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The ``limit`` most uncertain rows of ``candidates`` and ``chunk`` together (bounded memory over a file)."""
    merged = chunk if candidates is None else pd.concat([candidates, chunk], ignore_index=True)
    if len(merged) <= limit:
        return merged.reset_index(drop=True)
    return merged.nlargest(limit, "uncertainty", keep="first").reset_index(drop=True)


def select_to_label(candidates: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The ``rows`` most uncertain texts, one per near-duplicate group, most uncertain first."""
    if candidates is None or candidates.empty or rows <= 0:
        return pd.DataFrame(columns=["text", "uncertainty"])
    ordered = candidates.sort_values("uncertainty", ascending=False, kind="stable")
    ordered = ordered[ordered["text"].str.strip() != ""]
    keys = ordered["text"].map(near_duplicate_key)
    return ordered[~keys.duplicated()].head(rows).reset_index(drop=True)
