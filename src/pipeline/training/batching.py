"""Batch order and padding: length-grouped batches and dynamic padding.

The order of an epoch is a pure function of (seed, epoch), so a resumed run can skip exactly the
batches it already trained on.
"""

from __future__ import annotations

import numpy as np
import torch

BUCKET_BATCHES = 50


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_by_length: bool = True,
                  bucket_batches: int = BUCKET_BATCHES) -> list[np.ndarray]:
    """Index batches for one epoch.

    Shuffle all indices; with ``group_by_length`` cut the shuffled order into buckets of
    ``bucket_batches`` batches and sort each bucket by length, so a batch holds texts of similar length
    (little padding) while the epoch stays random. Finally shuffle the order of the batches.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        bucket = batch_size * bucket_batches
        chunks = [order[i:i + bucket] for i in range(0, len(order), bucket)]
        order = np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in chunks]) if chunks else order
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(sequences: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id arrays to the longest in the batch: (input_ids, attention_mask), int64."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def collate(input_ids: list[np.ndarray], labels: np.ndarray, indices: np.ndarray, pad_id: int) -> dict[str, torch.Tensor]:
    ids, mask = pad_batch([input_ids[i] for i in indices], pad_id)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.from_numpy(labels[indices])}


def evaluation_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches sorted by length (least padding); predictions are scattered back by index."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
