"""How an epoch is cut into batches, and how many optimizer steps a run plans."""

from __future__ import annotations

import math

import numpy as np

from pipeline.config import TrainingConfig
from pipeline.training.batching import epoch_batches, token_budget_batches


def build_epoch_batches(lengths: np.ndarray, config: TrainingConfig, epoch: int) -> list[np.ndarray]:
    """One epoch's batches: ``batch_size`` rows, or up to ``max_batch_tokens`` padded tokens when set."""
    if config.max_batch_tokens:
        return token_budget_batches(lengths, config.max_batch_tokens, config.seed, epoch)
    return epoch_batches(lengths, config.batch_size, config.seed, epoch, config.group_by_length)


def plan_token_budget_steps(lengths: np.ndarray, config: TrainingConfig) -> tuple[int, int, int] | None:
    """``plan_steps`` for token-budget batches, whose count varies a little by epoch; None when batching by rows."""
    if not config.max_batch_tokens:
        return None
    accum = config.gradient_accumulation_steps
    if config.max_steps:
        per_epoch = math.ceil(len(build_epoch_batches(lengths, config, 0)) / accum)
        return per_epoch, config.max_steps, math.ceil(config.max_steps / per_epoch)
    steps = [math.ceil(len(build_epoch_batches(lengths, config, e)) / accum) for e in range(config.epochs)]
    return steps[0], sum(steps), config.epochs


def plan_steps(examples: int, config: TrainingConfig) -> tuple[int, int, int]:
    """(optimizer steps per epoch, planned steps, epochs to run)."""
    batches = math.ceil(examples / config.batch_size)
    per_epoch = math.ceil(batches / config.gradient_accumulation_steps)
    planned = config.max_steps or per_epoch * config.epochs
    return per_epoch, planned, math.ceil(planned / per_epoch)
