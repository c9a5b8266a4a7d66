"""The optimizer side of fine-tuning: AdamW groups, the warm-up/decay schedule, clipping, class weights."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.config import TrainingConfig


def build_optimizer(model: torch.nn.Module, config: TrainingConfig, device: torch.device) -> torch.optim.Optimizer:
    """Fused AdamW with weight decay on matrices only (biases and LayerNorm weights are 1-D).

    Parameters the model loader initialised afresh (``model.pipeline_new_parameters``: the new head) learn
    at ``learning_rate * head_learning_rate_factor``: Adam moves every weight by about the learning rate
    per step whatever its gradient, so a head starting from zero-ish logits at the body's rate needs
    hundreds of steps before its classes separate (measured: bench/results/accuracy.md).
    """
    from pipeline.training.modeling import canonical_parameter_name

    new = getattr(model, "pipeline_new_parameters", frozenset())
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for is_new in (False, True):
        factor = config.head_learning_rate_factor if is_new else 1.0
        members = [p for n, p in named if (canonical_parameter_name(n) in new) == is_new]
        groups += [
            {
                "params": [p for p in members if p.ndim >= 2],
                "weight_decay": config.weight_decay,
                "lr": config.learning_rate * factor,
            },
            {"params": [p for p in members if p.ndim < 2], "weight_decay": 0.0, "lr": config.learning_rate * factor},
        ]
    groups = [g for g in groups if g["params"]]
    fused = device.type in ("cuda", "cpu") and all(p.dtype.is_floating_point for _, p in named)
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused)


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainingConfig, planned_steps: int):
    """Linear warm-up over ``warmup_ratio`` of the planned steps, then linear decay to zero."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * planned_steps), planned_steps)


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float, device: torch.device) -> torch.Tensor:
    """Clip the global gradient norm to ``max_norm``; returns the norm before clipping.

    On CUDA the grads are always rescaled (by a factor clamped to 1) so the host never waits for the
    GPU; on CPU the rescaling pass is skipped when the norm is within the limit.
    """
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, foreach=True)
    if device.type != "cpu" or float(norm) > max_norm:
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm, foreach=True)
    return norm


def class_weight_tensor(labels: np.ndarray, num_labels: int) -> torch.Tensor:
    counts = np.bincount(labels, minlength=num_labels).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_labels * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)
