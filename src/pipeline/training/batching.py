"""Batch order and padding: length-grouped batches and dynamic padding.

The order of an epoch is a pure function of (seed, epoch), so a resumed run can skip exactly the
batches it already trained on.
"""

from __future__ import annotations

import numpy as np
import torch

BUCKET_BATCHES = 50


def epoch_batches(
    lengths: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    bucket_batches: int = BUCKET_BATCHES,
) -> list[np.ndarray]:
    """Index batches for one epoch.

    Shuffle all indices; with ``group_by_length`` cut the shuffled order into buckets of
    ``bucket_batches`` batches and sort each bucket by length, so a batch holds texts of similar length
    (little padding) while the epoch stays random. Finally shuffle the order of the batches.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        bucket = batch_size * bucket_batches
        chunks = [order[i : i + bucket] for i in range(0, len(order), bucket)]
        order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in chunks]) if chunks else order
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(sequences: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id arrays to the longest in the batch: (input_ids, attention_mask), int64."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def collate(
    input_ids: list[np.ndarray], labels: np.ndarray, indices: np.ndarray, pad_id: int
) -> dict[str, torch.Tensor]:
    ids, mask = pad_batch([input_ids[i] for i in indices], pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.from_numpy(labels[indices])}


def evaluation_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches sorted by length (least padding); predictions are scattered back by index."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def token_budget_batches(
    lengths: np.ndarray,
    max_tokens: int,
    seed: int,
    epoch: int,
    bucket_batches: int = BUCKET_BATCHES,
    max_rows: int | None = None,
) -> list[np.ndarray]:
    """Index batches holding at most ``max_tokens`` padded tokens each (rows x longest row), for one epoch.

    Batching by tokens rather than rows keeps every step's work about equal: short texts come in large
    batches (a GPU is not left launch-bound on 13-token phrases) and long ones in small batches (no
    out-of-memory on the longest). Like ``epoch_batches``: shuffle, sort buckets of about
    ``bucket_batches`` batches by length, cut, shuffle the batch order; a pure function of (seed, epoch).
    A row longer than ``max_tokens`` gets a batch of its own. ``max_rows`` caps the rows of a batch.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    mean = max(float(lengths.mean()), 1.0) if len(lengths) else 1.0
    bucket = max(1, int(bucket_batches * max_tokens / mean))
    batches: list[np.ndarray] = []
    for start in range(0, len(order), bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        current: list[int] = []
        for index in chunk:
            width = max(int(lengths[current[0]]) if current else 0, int(lengths[index]))
            if current and (width * (len(current) + 1) > max_tokens or (max_rows and len(current) >= max_rows)):
                batches.append(np.array(current))
                current = []
            current.append(int(index))
        if current:
            batches.append(np.array(current))
    return [batches[i] for i in rng.permutation(len(batches))]
