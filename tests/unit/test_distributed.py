"""Data-parallel plumbing without starting processes: shares, loss factors, configuration, commands,
and how a failed torchrun is described."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, load_config
from pipeline.training.distributed import build_command, describe_failure, parse_failures, resolve_world_size
from pipeline.training.parallel import DataParallel

TORCHRUN_KILLED = """
Failures:
[1]:
  time      : 2026-12-03_12:37:49
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 16772)  (SIGTERM)
  error_file: <N/A>
  traceback : Signal 15 (SIGTERM) received by PID 16772
-------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-03_12:37:48
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 16773)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 16773
"""


def test_shares_of_a_batch_are_disjoint_and_cover_it():
    batch = np.array([9, 4, 7, 1, 3, 8, 2])
    shares = [DataParallel(rank, 3).shard(batch) for rank in range(3)]
    assert all(counted for _, counted in shares)
    assert sorted(np.concatenate([share for share, _ in shares]).tolist()) == sorted(batch.tolist())


def test_a_rank_without_examples_runs_one_with_zero_weight():
    share, counted = DataParallel(1, 2).shard(np.array([5]))
    assert share.tolist() == [5] and not counted
    assert DataParallel(1, 2).loss_factor(share, np.array([5]), counted, np.array([0] * 6), None) == 0.0


@pytest.mark.parametrize("class_weights", [None, torch.tensor([0.5, 3.0])])
def test_loss_factors_make_the_average_of_rank_losses_the_batch_loss(class_weights):
    """sum over ranks of factor * (rank's mean loss) / world == the whole batch's (weighted) mean loss."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=50)
    losses = rng.random(50)
    batch = rng.permutation(50)[:11]  # uneven shares: 4, 4, 3
    w = np.ones(2) if class_weights is None else class_weights.numpy()
    expected = (w[labels[batch]] * losses[batch]).sum() / w[labels[batch]].sum()
    total = 0.0
    for rank in range(3):
        parallel = DataParallel(rank, 3)
        share, counted = parallel.shard(batch)
        rank_mean = (w[labels[share]] * losses[share]).sum() / w[labels[share]].sum()
        total += parallel.loss_factor(share, batch, counted, labels, class_weights) * rank_mean
    assert total / 3 == pytest.approx(expected)


def test_process_layout_configuration():
    assert load_config(overrides=["training.num_processes=auto"]).training.num_processes == "auto"
    assert (
        resolve_world_size(load_config(overrides=["training.num_processes=auto", "training.device=cpu"]).training) == 1
    )
    assert resolve_world_size(load_config(overrides=["training.num_processes=3", "training.num_nodes=2"]).training) == 6
    for bad in ("training.num_processes=0", "training.num_processes=many", "training.rdzv_endpoint=nohost"):
        with pytest.raises(ConfigError, match="training"):
            load_config(overrides=[bad])


def test_the_process_layout_is_not_part_of_the_checkpoint_fingerprint():
    from pipeline.training.steps import training_fingerprint

    one, two = load_config(), load_config(overrides=["training.num_processes=2"])
    assert training_fingerprint(one, "s", "k", {"a": 0}, "m") == training_fingerprint(two, "s", "k", {"a": 0}, "m")


def test_torchrun_command_single_node_and_several(tmp_path):
    single = build_command(load_config(overrides=["training.num_processes=2", "training.device=cpu"]), tmp_path / "j")
    assert "--standalone" in single and "--nproc-per-node=2" in single and single[-1] == "--backend=gloo"
    assert single[-4:-1] == ["-m", "pipeline.training.worker", str(tmp_path / "j")]
    several = build_command(
        load_config(
            overrides=["training.num_processes=2", "training.num_nodes=3", "training.rdzv_endpoint=10.0.0.5:29400"]
        ),
        tmp_path / "j",
    )
    assert "--nnodes=3" in several and "--rdzv-endpoint=10.0.0.5:29400" in several and "--standalone" not in several
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        build_command(load_config(overrides=["training.num_processes=2", "training.num_nodes=2"]), tmp_path / "j")


def test_a_rank_killed_by_a_signal_is_named_before_secondary_errors(tmp_path):
    (tmp_path / "errors").mkdir()
    (tmp_path / "errors" / "rank-0.json").write_text(
        json.dumps(
            {
                "rank": 0,
                "local_rank": 0,
                "host": "h",
                "time": 1.0,
                "type": "DistBackendError",
                "message": "Connection closed by peer [127.0.0.1]:4242",
            }
        )
    )
    assert parse_failures(TORCHRUN_KILLED) == {0: -15, 1: -9}
    assert describe_failure(tmp_path, TORCHRUN_KILLED, 1).startswith("rank 1 was killed by SIGKILL")


def test_the_first_real_exception_is_named_not_the_broken_connections_it_caused(tmp_path):
    (tmp_path / "errors").mkdir()
    records = [
        {"rank": 0, "local_rank": 0, "host": "h", "time": 1.0, "type": "RuntimeError", "message": "Connection reset"},
        {"rank": 1, "local_rank": 1, "host": "h", "time": 2.0, "type": "ValueError", "message": "bad batch"},
    ]
    for record in records:
        (tmp_path / "errors" / f"rank-{record['rank']}.json").write_text(json.dumps(record))
    output = TORCHRUN_KILLED.replace("-9 (pid", "1 (pid")
    assert describe_failure(tmp_path, output, 1) == "rank 1 (host h, local rank 1) failed: ValueError: bad batch"


def test_a_failure_without_any_report_points_at_the_log(tmp_path):
    assert "torchrun exited with code 1: boom" in describe_failure(tmp_path, "starting\nboom\n", 1)
