"""One rank of a data-parallel fine-tuning run: ``python -m pipeline.training.worker [JOB_FILE]`` under torchrun.

The fine-tune step writes the job file (configuration, tokenized splits, model source, checkpoint folder)
and launches this module on every process of the machine that runs the flow. Other nodes of a multi-node
run start it without a job file, with the same rendezvous (see docs/distributed.md); the path is shared
by the ranks that have it. Rank 0 logs to MLflow, writes checkpoints and saves the model; a rank that
fails writes ``errors/rank-<rank>.json`` in the job folder so the step can name it and its cause.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import socket
import time
import traceback
from datetime import timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

TIMEOUT_ENV = "PIPELINE_COLLECTIVE_TIMEOUT_S"
RESULT_FILE = "result.json"
COUNTS_FILE = "sample_counts.npy"
ERRORS_DIR = "errors"


def init_process_group(backend: str | None, timeout_s: float) -> str:
    """Join the torchrun process group: NCCL when this process has a GPU, else gloo; returns the backend."""
    import torch
    import torch.distributed as dist

    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return backend


def share_job_path(job_file: str | None) -> Path:
    """The job file named by any rank (ranks on other nodes start without one)."""
    import torch.distributed as dist

    known: list = [None] * dist.get_world_size()
    dist.all_gather_object(known, job_file)
    found = sorted({path for path in known if path})
    if len(found) != 1:
        raise RuntimeError(
            f"expected exactly one job file among the ranks, got {found or 'none'}: start the flow's "
            "node with the pipeline and the other nodes with `python -m pipeline.training.worker`"
        )
    return Path(found[0])


def write_error(job_dir: Path, rank: int, exc: BaseException) -> None:
    """``errors/rank-<rank>.json``: type, message, traceback, host and time of this rank's failure."""
    folder = job_dir / ERRORS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "rank": rank,
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "time": time.time(),
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    partial = folder / f".rank-{rank}.json.partial"
    partial.write_text(json.dumps(record, indent=2))
    os.replace(partial, folder / f"rank-{rank}.json")


def train_rank(job: dict, job_dir: Path) -> None:
    """Load the model, fine-tune this rank's share; rank 0 saves the model and the result files."""
    import numpy as np
    import torch

    from pipeline.config import PipelineConfig
    from pipeline.registry import tracking as registry
    from pipeline.training.devices import seed_everything
    from pipeline.training.loop import fine_tune
    from pipeline.training.modeling import load_model, load_tokenizer, save_model
    from pipeline.training.parallel import DataParallel
    from pipeline.training.steps import record_resume

    config = PipelineConfig.model_validate(job["config"])
    parallel = DataParallel.from_process_group()
    seed_everything(config.training.seed)
    model = load_model(job["source"], job["label_map"], config.model)  # DDP broadcasts rank 0's weights
    if parallel.rank:
        torch.manual_seed(config.training.seed + parallel.rank)  # each rank its own dropout stream
    on_epoch = on_resume = None
    if parallel.is_main and job.get("run_id"):  # without a run (library use) nothing is logged
        client, run_id = registry.client(job["tracking_uri"]), job["run_id"]

        def on_epoch(record: dict) -> None:
            registry.log_metrics(
                client, run_id, {k: v for k, v in record.items() if k not in ("epoch", "step")}, step=record["epoch"]
            )

        def on_resume(info: dict) -> None:
            record_resume(client, run_id, info)
            for record in info["history"]:
                on_epoch(record)

    resume_from = Path(job["resume_from"]) if job["resume_from"] else None
    result = fine_tune(
        model,
        job["train"],
        job["validation"],
        job["pad_id"],
        config.training,
        Path(job["checkpoint_dir"]),
        job["fingerprint"],
        resume_from=resume_from,
        on_epoch=on_epoch,
        progress=False,
        on_resume=on_resume,
        checkpoint_meta={"mlflow_run_id": job.get("run_id")},
        parallel=parallel,
        resume_dirs=[Path(p) for p in job.get("resume_dirs") or []] or None,
    )
    if not parallel.is_main:
        return
    save_model(result.model, load_tokenizer(job["tokenizer_dir"]), Path(job["model_dir"]))
    np.save(job_dir / COUNTS_FILE, result.sample_counts)
    summary = {
        "history": result.history,
        "step_log": result.step_log,
        "steps": result.steps,
        "planned_steps": result.planned_steps,
        "resumed_from_step": result.resumed_from_step,
        "device": result.device,
        "samples_per_s": result.samples_per_s,
        "train_seconds": result.train_seconds,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "world_size": parallel.world_size,
    }
    partial = job_dir / f".{RESULT_FILE}.partial"
    partial.write_text(json.dumps(summary, default=float))
    os.replace(partial, job_dir / RESULT_FILE)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One rank of data-parallel fine-tuning (start it with torchrun).")
    parser.add_argument("job_file", nargs="?", help="Job file written by the fine-tune step (the flow's node only).")
    parser.add_argument("--backend", choices=["nccl", "gloo"], help="Default: nccl with a GPU, else gloo.")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s rank{os.environ.get('RANK', '?')} %(levelname)s %(name)s: %(message)s"
    )
    if os.environ.get("RANK", "0") != "0":  # rank 0 speaks for the run; the others only warn
        logging.getLogger().setLevel(logging.WARNING)
    import torch.distributed as dist

    init_process_group(args.backend, float(os.environ.get(TIMEOUT_ENV, "600")))
    rank, job_dir = dist.get_rank(), None
    try:
        job_path = share_job_path(args.job_file)
        job_dir = job_path.parent
        with job_path.open("rb") as handle:
            job = pickle.load(handle)  # written by this pipeline's fine-tune step, never by a user
        train_rank(job, job_dir)
    except BaseException as exc:
        if job_dir is not None:
            write_error(job_dir, rank, exc)
        raise  # torchrun stops the other ranks; a process group left behind after a failure is not torn down
    dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover - torchrun entry point
    main()
