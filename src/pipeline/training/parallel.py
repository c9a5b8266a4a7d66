"""What one rank of a data-parallel run does differently from a single process.

Every rank computes the same length-grouped batches of an epoch (``batching.epoch_batches`` is a pure
function of seed and epoch) and trains on a disjoint share of each batch: rank ``r`` takes the batch's
examples ``r, r + W, r + 2W, ...``. Each rank's loss is scaled so that DDP's gradient average equals the
gradient of the whole batch's loss (also when the shares are uneven or class weights are used), so the
optimizer steps, the global batch and the learning-rate schedule are those of one process with the same
``batch_size``. Per-example sample counts are summed over the ranks; only rank 0 writes checkpoints, logs
and saves the model.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
import torch.distributed as dist

from pipeline.evaluation.metrics import classification_metrics
from pipeline.training.inference import predict_proba

logger = logging.getLogger(__name__)


class DataParallel:
    """Rank-side helpers used by ``loop.fine_tune`` when it runs in a process group."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size
        self.is_main = rank == 0
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        self._class_weights: np.ndarray | None = None

    @classmethod
    def from_process_group(cls) -> DataParallel:
        return cls(dist.get_rank(), dist.get_world_size())

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model under DDP (parameters broadcast from rank 0, gradients averaged in buckets)."""
        device_ids = [torch.cuda.current_device()] if device.type == "cuda" else None
        self.ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        return self.ddp

    def shard(self, batch: np.ndarray) -> tuple[np.ndarray, bool]:
        """(this rank's indices of ``batch``, whether they count). A rank left without examples (a batch
        smaller than the world) still runs one example with zero weight, so every rank joins the all-reduce."""
        share = batch[self.rank :: self.world_size]
        return (share, True) if len(share) else (batch[:1], False)

    def loss_factor(
        self, share: np.ndarray, batch: np.ndarray, counts: bool, labels: np.ndarray, class_weights: torch.Tensor | None
    ) -> float:
        """Factor turning this rank's mean loss into its part of the batch's mean loss, times the world size
        (DDP divides the summed gradients by the world size)."""
        if not counts:
            return 0.0
        if class_weights is None:
            local, total = len(share), len(batch)
        else:
            if self._class_weights is None:  # copied to the host once: no device sync per micro-batch
                self._class_weights = class_weights.detach().cpu().numpy()
            weights = self._class_weights
            local, total = weights[labels[share]].sum(), weights[labels[batch]].sum()
        return float(local / total * self.world_size) if total else 0.0

    def sync_context(self, sync: bool):
        """DDP's ``no_sync`` on micro-batches that do not end an accumulation (gradients reduce once per step)."""
        if sync or self.ddp is None:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def device_tensor(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` on the device the backend reduces on (NCCL: the GPU; gloo: the CPU)."""
        if dist.get_backend() == "nccl":
            return value.to(torch.device("cuda", torch.cuda.current_device()))
        return value.cpu()

    def sum_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        reduced = self.device_tensor(value.detach().clone())
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.to(value.device)

    def mean_loss(self, running_loss: torch.Tensor) -> torch.Tensor:
        """The summed batch-mean losses since the last log point, as one process would have them."""
        return self.sum_over_ranks(running_loss) / self.world_size

    def total_counts(self, counts: np.ndarray) -> np.ndarray:
        return self.sum_over_ranks(torch.from_numpy(counts)).numpy()

    def checkpoint_state(
        self, counts: np.ndarray, running_loss: torch.Tensor, samples: int
    ) -> tuple[np.ndarray, float, dict]:
        """(global sample counts, running loss as one process has it, per-rank positions and RNG states).

        Every rank must call this at the same step; only rank 0's return value is written.
        """
        from pipeline.training.checkpoints import rng_state

        mine = {"rank": self.rank, "samples_seen": int(samples), "rng": rng_state()}
        ranks: list = [None] * self.world_size
        dist.all_gather_object(ranks, mine)
        return (
            self.total_counts(counts),
            float(self.mean_loss(running_loss)),
            {"world_size": self.world_size, "ranks": ranks},
        )

    def restore_state(self, state: dict, counts: np.ndarray, running_loss: torch.Tensor) -> np.ndarray:
        """After loading a checkpoint on every rank: rank 0 keeps the global counts and running loss (their
        sums over ranks stay right), the others start from zero; each rank restores its own RNG state when
        the checkpoint was written by as many ranks (a different world size resumes with fresh streams)."""
        from pipeline.training.checkpoints import restore_rng_state

        ranks = state.get("ranks") or []
        if state.get("world_size") == self.world_size and len(ranks) == self.world_size:
            restore_rng_state(ranks[self.rank]["rng"])
        elif self.rank:
            torch.manual_seed(torch.initial_seed() + self.rank)
        if self.is_main:
            running_loss.mul_(self.world_size)  # the saved value is the mean over ranks; the sum is kept per rank
            return counts
        running_loss.zero_()
        return np.zeros_like(counts)

    def evaluate(self, model, split, pad_id: int, config, device) -> dict:
        """Validation metrics from every rank predicting a share of the split; identical on every rank."""
        share = np.arange(len(split))[self.rank :: self.world_size]
        proba = predict_proba(
            model, [split.input_ids[i] for i in share], pad_id, config.eval_batch_size, device, config.bf16
        )
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, (share, proba))
        full = np.zeros((len(split), model.config.num_labels), dtype=np.float32)
        for indices, part in gathered:
            full[indices] = part
        metrics = classification_metrics(split.labels, full.argmax(axis=1), model.config.num_labels)
        return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
