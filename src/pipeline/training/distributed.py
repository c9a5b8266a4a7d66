"""Launching fine-tuning as data-parallel processes under torchrun, and reporting how it ended.

``launch_fine_tune`` writes a job file (configuration, tokenized splits, model source, checkpoint folder)
under ``runs/<run_id>/distributed/``, runs ``python -m torch.distributed.run ... -m pipeline.training.worker``
and waits. Its output is streamed into this process's log. A failure raises ``DistributedTrainingError``
naming the rank and the cause: a rank killed by a signal, else the exception a rank raised (from the
rank's error file), preferring the first failure that is not a broken connection to a rank that died.
Collectives time out after ``training.collective_timeout_s``, so a hung rank fails the step too.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

from pipeline.config import PipelineConfig, TrainingConfig

logger = logging.getLogger(__name__)

JOB_FILE = "job.pkl"
LOG_FILE = "torchrun.log"
TAIL_LINES = 400
STOP_GRACE_S = 30.0
_FAILURE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\)\s*\n\s*exitcode\s*:\s*(-?\d+)")
_PEER_LOST = (
    "connection closed by peer",
    "connection reset",
    "broken pipe",
    "timed out",
    "timeout",
    "nccl communicator was aborted",
    "socket",
)


class DistributedTrainingError(RuntimeError):
    """A data-parallel training run failed; the message names the rank and the cause."""


def resolve_num_processes(config: TrainingConfig) -> int:
    """Processes on this node: ``auto`` is one per visible GPU (1 without a GPU or with ``device=cpu``)."""
    if config.num_processes != "auto":
        return int(config.num_processes)
    import torch

    return max(1, torch.cuda.device_count()) if config.device != "cpu" and torch.cuda.is_available() else 1


def resolve_world_size(config: TrainingConfig) -> int:
    return resolve_num_processes(config) * config.num_nodes


def uses_gpus(config: TrainingConfig) -> bool:
    import torch

    return config.device != "cpu" and torch.cuda.is_available()


def build_command(config: PipelineConfig, job_file: Path) -> list[str]:
    """The torchrun command of the flow's node (``--standalone`` on one node, c10d rendezvous on several)."""
    training = config.training
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc-per-node={resolve_num_processes(training)}",
        "--max-restarts=0",
    ]
    if training.num_nodes > 1:
        if not training.rdzv_endpoint:
            raise ValueError("training.num_nodes > 1 needs training.rdzv_endpoint (host:port of this node)")
        command += [
            f"--nnodes={training.num_nodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={training.rdzv_endpoint}",
            f"--rdzv-id={config.registry.model_name}",
        ]
    else:
        command += ["--standalone"]
    backend = "nccl" if uses_gpus(training) else "gloo"
    return [*command, "-m", "pipeline.training.worker", str(job_file), f"--backend={backend}"]


def worker_environment(config: TrainingConfig) -> dict[str, str]:
    """The ranks' environment: collective timeout, and on CPU the cores shared out between the ranks."""
    from pipeline.training.worker import TIMEOUT_ENV

    env = dict(os.environ)
    env[TIMEOUT_ENV] = str(config.collective_timeout_s)
    if not uses_gpus(config):
        threads = config.num_threads or max(1, (os.cpu_count() or 1) // resolve_num_processes(config))
        env["OMP_NUM_THREADS"] = str(threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def write_job(job_dir: Path, job: dict) -> Path:
    """The job file the ranks read (written whole, then renamed)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    partial, final = job_dir / f".{JOB_FILE}.partial", job_dir / JOB_FILE
    with partial.open("wb") as handle:
        pickle.dump(job, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, final)
    return final


def death_signal_hook():
    """A pre-exec hook giving torchrun SIGTERM (it then stops its ranks) when the process that launched it
    dies, even by SIGKILL; None off Linux. libc is resolved here: the child must not import anything."""
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    return lambda: prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def run_torchrun(command: list[str], env: dict[str, str], log_path: Path) -> tuple[int, str]:
    """Run torchrun, streaming its output into the log and ``log_path``; (exit code, last lines)."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    logger.info("launching %s", " ".join(command))
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
            preexec_fn=death_signal_hook(),
        )
        try:
            for line in process.stdout:
                log.write(line)
                tail.append(line)
                logger.info("[torchrun] %s", line.rstrip())
            return process.wait(), "".join(tail)
        finally:
            stop_process_group(process)


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop torchrun and its ranks if still running (the step was cancelled or failed here)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def parse_failures(output: str) -> dict[int, int]:
    """{rank: exit code} from torchrun's failure report (negative codes are signals)."""
    return {int(rank): int(code) for rank, _, code in _FAILURE.findall(output)}


def read_errors(job_dir: Path) -> list[dict]:
    from pipeline.training.worker import ERRORS_DIR

    records = []
    for path in sorted((job_dir / ERRORS_DIR).glob("rank-*.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(records, key=lambda r: r.get("time", 0.0))


def describe_failure(job_dir: Path, output: str, exit_code: int) -> str:
    """One line naming the failed rank and why (see the module docstring for the order of evidence)."""
    failures = parse_failures(output)
    for rank, code in sorted(failures.items()):
        if code < 0 and -code != signal.SIGTERM:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return f"rank {rank} was killed by {name} (the other ranks were stopped)"
    errors = read_errors(job_dir)
    first_cause = [e for e in errors if not any(s in e["message"].lower() for s in _PEER_LOST)] or errors
    if first_cause:
        error = first_cause[0]
        return (
            f"rank {error['rank']} (host {error['host']}, local rank {error['local_rank']}) failed: "
            f"{error['type']}: {error['message']}"
        )
    if failures:
        rank, code = next(iter(failures.items()))
        return f"rank {rank} exited with code {code}; see {job_dir / LOG_FILE}"
    last = output.strip().splitlines()[-1] if output.strip() else "no output"
    return f"torchrun exited with code {exit_code}: {last}; see {job_dir / LOG_FILE}"


def launch_fine_tune(config: PipelineConfig, job_dir: Path, job: dict):
    """Run data-parallel fine-tuning and return its ``TrainResult`` (``model`` is None: rank 0 saved it to
    ``job['model_dir']``). Raises DistributedTrainingError when any rank fails."""
    import numpy as np

    from pipeline.training.loop import TrainResult
    from pipeline.training.worker import COUNTS_FILE, ERRORS_DIR, RESULT_FILE

    for stale in [job_dir / RESULT_FILE, job_dir / COUNTS_FILE, *(job_dir / ERRORS_DIR).glob("rank-*.json")]:
        stale.unlink(missing_ok=True)  # left by an earlier attempt of the same run
    job_file = write_job(job_dir, job)
    exit_code, output = run_torchrun(
        build_command(config, job_file), worker_environment(config.training), job_dir / LOG_FILE
    )
    if exit_code != 0 or not (job_dir / RESULT_FILE).exists():
        message = describe_failure(job_dir, output, exit_code)
        logger.error("data-parallel training failed: %s", message)
        raise DistributedTrainingError(message)
    summary = json.loads((job_dir / RESULT_FILE).read_text())
    job_file.unlink(missing_ok=True)  # a copy of the tokenized data; the log and the result stay
    result = TrainResult(
        model=None,
        history=summary["history"],
        step_log=summary["step_log"],
        steps=summary["steps"],
        planned_steps=summary["planned_steps"],
        resumed_from_step=summary["resumed_from_step"],
        sample_counts=np.load(job_dir / COUNTS_FILE),
        device=summary["device"],
        samples_per_s=summary["samples_per_s"],
        train_seconds=summary["train_seconds"],
        best_epoch=summary["best_epoch"],
        stopped_early=summary["stopped_early"],
        world_size=summary["world_size"],
    )
    return result
