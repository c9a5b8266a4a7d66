"""Entry points of the training stage: tokenize the splits, fine-tune and save the model."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.registry import tracking as registry
from pipeline.results import Splits, TokenizedData, TrackingRun, TrainedModel
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)

# How many processes train is not part of what a checkpoint must match: a run may resume on more or fewer.
PROCESS_LAYOUT_KEYS = ("num_processes", "num_nodes", "rdzv_endpoint", "collective_timeout_s")


def tokenize_splits(config: PipelineConfig, workspace: Workspace, splits: Splits) -> TokenizedData:
    """The tokenizer, the label map and each split's token ids, from the content-keyed cache."""
    from pipeline.training.modeling import build_label_map, load_tokenizer
    from pipeline.training.tokenization import tokenize_split

    tokenizer = load_tokenizer(config.model.name_or_path)
    frames = splits.frames()
    label_map = build_label_map(pd.concat([frame["label"] for frame in frames.values()]))
    tokenized = {
        name: tokenize_split(frame, tokenizer, label_map, config.model.max_length, workspace.cache / "tokens")
        for name, frame in frames.items()
    }
    return TokenizedData(splits.snapshot_id, label_map, tokenizer, tokenized)


def training_fingerprint(config: PipelineConfig, snapshot_id: str, train_key: str, label_map: dict, base: str) -> dict:
    """What a checkpoint must match to be resumed: data, labels, model source and every training knob."""
    ignored = {"num_threads", "checkpoint_steps", "keep_checkpoints", "resume_from", "device", *PROCESS_LAYOUT_KEYS}
    training = config.training.model_dump(exclude=ignored)
    return {
        "snapshot_id": snapshot_id,
        "train_tokens": train_key,
        "base_model": base,
        "labels": hashlib.sha256(json.dumps(label_map, sort_keys=True).encode()).hexdigest()[:16],
        "model": json.dumps(config.model.model_dump(exclude={"warm_start"}), sort_keys=True),
        "training": json.dumps(training, sort_keys=True),
    }


def train_model(
    config: PipelineConfig,
    workspace: Workspace,
    tracking: TrackingRun,
    data: TokenizedData,
    warm_start_dir: str | None = None,
    progress: bool = True,
    on_progress=None,
) -> TrainedModel:
    """Fine-tune and save the best model under ``runs/<run_id>/model``; log epochs and the curve.

    With ``model.warm_start`` (and no explicit ``warm_start_dir``) the current champion is resolved and
    downloaded now (``pipeline.training.warm_start``; it falls back to the base model, saying why, when the
    champion does not fit). A run that finds a matching checkpoint resumes from it; the MLflow run then
    records ``resumed_from_step`` and the run that wrote the checkpoint (marked KILLED if it still shows
    RUNNING). Per-example sample counts are saved as ``runs/<run_id>/sample_counts.npy``. ``on_progress(step,
    planned)`` is called after each optimizer step.
    """
    import numpy as np

    from pipeline.evaluation.metrics import plot_training_curve
    from pipeline.training.devices import seed_everything
    from pipeline.training.distributed import resolve_world_size
    from pipeline.training.loop import fine_tune
    from pipeline.training.modeling import load_model, save_model

    snapshot_id, label_map, tokenizer, tokenized = data.snapshot_id, data.label_map, data.tokenizer, data.splits
    client = registry.client(tracking.tracking_uri)
    run_id = tracking.run_id
    out_dir = workspace.runs / run_id
    source, source_id, warm_tag = config.model.name_or_path, config.model.name_or_path, None
    if warm_start_dir:
        source = source_id = warm_tag = warm_start_dir
    elif config.model.warm_start:
        from pipeline.training.warm_start import resolve_warm_start

        warm = resolve_warm_start(
            tracking.tracking_uri,
            config.registry.model_name,
            config.model.name_or_path,
            label_map,
            out_dir / "warm_start",
        )
        source, source_id, warm_tag = warm.source, warm.champion_uri or config.model.name_or_path, warm.tag()
    if warm_tag:
        client.set_tag(run_id, "warm_start", warm_tag)
    fingerprint = training_fingerprint(config, snapshot_id, tokenized["train"].cache_key, label_map, source_id)
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    checkpoint_root = workspace.checkpoints / config.registry.model_name / key
    checkpoint_dir = checkpoint_root / run_id  # this run's own folder: two runs never prune each other's files
    resume_dirs = [checkpoint_root, *sorted(p for p in checkpoint_root.glob("*") if p.is_dir() and p.name != run_id)]
    resume_from = confine_to_workspace(workspace, config.training.resume_from)

    def on_epoch(record: dict) -> None:
        registry.log_metrics(
            client, run_id, {k: v for k, v in record.items() if k not in ("epoch", "step")}, step=record["epoch"]
        )

    def on_resume(info: dict) -> None:
        record_resume(client, run_id, info)
        for record in info["history"]:  # epochs finished before the interruption belong to this run's curve too
            on_epoch(record)

    if resolve_world_size(config.training) > 1:
        result = fine_tune_distributed(
            config,
            tracking,
            source,
            label_map,
            tokenizer,
            tokenized,
            out_dir,
            checkpoint_dir,
            fingerprint,
            resume_from,
            resume_dirs,
        )
        model_dir = out_dir / "model"
    else:
        seed_everything(config.training.seed)
        model = load_model(source, label_map, config.model)
        result = fine_tune(
            model,
            tokenized["train"],
            tokenized.get("validation"),
            tokenizer.pad_token_id,
            config.training,
            checkpoint_dir,
            fingerprint,
            resume_from=resume_from,
            on_epoch=on_epoch,
            progress=progress,
            on_resume=on_resume,
            checkpoint_meta={"mlflow_run_id": run_id},
            resume_dirs=resume_dirs,
            on_step=on_progress,
        )
        model_dir = save_model(result.model, tokenizer, out_dir / "model")
    registry.write_model_meta(
        model_dir,
        {
            "max_length": config.model.max_length,
            "label_map": label_map,
            "base_model": config.model.name_or_path,
            "snapshot_id": snapshot_id,
            "warm_started_from": source_id if source_id != config.model.name_or_path else None,
        },
    )
    curve = plot_training_curve(result.history, result.step_log, out_dir / "training_curve.png")
    registry.log_metric_series(client, run_id, result.step_log, "step")
    registry.log_metrics(
        client,
        run_id,
        {
            "train_samples_per_s": result.samples_per_s,
            "train_seconds": result.train_seconds,
            "optimizer_steps": result.steps,
        },
    )
    client.log_artifact(run_id, str(curve), "plots")
    client.set_tag(run_id, "device", result.device)
    client.set_tag(run_id, "world_size", str(result.world_size))
    client.set_tag(run_id, "resumed", str(result.resumed_from_step is not None).lower())
    np.save(out_dir / "sample_counts.npy", result.sample_counts)
    # Checkpoints stay until the version is registered (``registry.steps.register_model`` clears them): a
    # crash in evaluation or registration resumes from the last one instead of training again.
    return TrainedModel(
        model_dir=str(model_dir),
        snapshot_id=snapshot_id,
        history=result.history,
        steps=result.steps,
        planned_steps=result.planned_steps,
        resumed_from_step=result.resumed_from_step,
        samples_per_s=result.samples_per_s,
        train_seconds=result.train_seconds,
        device=result.device,
        best_epoch=result.best_epoch,
        stopped_early=result.stopped_early,
        train_rows=len(tokenized["train"]),
        warm_start=warm_tag,
        sample_counts=str(out_dir / "sample_counts.npy"),
        world_size=result.world_size,
    )


def confine_to_workspace(workspace: Workspace, path: str | None) -> Path | None:
    """``path`` (relative paths are taken from the workspace root) when it lies inside the workspace.

    ValueError otherwise: ``training.resume_from`` can be typed into a run form, and a checkpoint is loaded
    from it, so it must not name a file anywhere on the machine.
    """
    if not path:
        return None
    candidate = Path(path).expanduser()
    resolved = (candidate if candidate.is_absolute() else workspace.root / candidate).resolve()
    if not resolved.is_relative_to(workspace.root.resolve()):
        raise ValueError(
            f"training.resume_from {path!r} is outside the workspace {workspace.root}; "
            "checkpoints are only loaded from inside it"
        )
    return resolved


def record_resume(client, run_id: str, info: dict) -> None:
    """Tag the run with where it resumed; mark the run that wrote the checkpoint KILLED if still RUNNING."""
    previous = (info.get("meta") or {}).get("mlflow_run_id")
    client.set_tag(run_id, "resumed_from_step", str(info["step"]))
    client.set_tag(run_id, "resumed_from_checkpoint", info["checkpoint"])
    if previous and previous != run_id:
        client.set_tag(run_id, "resumed_from_run", previous)
        try:
            if client.get_run(previous).info.status == "RUNNING":
                client.set_tag(
                    previous, "failure_reason", f"interrupted; resumed by run {run_id} at step {info['step']}"
                )
                registry.end_run(client, previous, status="KILLED")
        except Exception as exc:  # the old run may live in another store; the resume itself is what matters
            logger.warning("could not mark run %s as KILLED: %s", previous, exc)


def fine_tune_distributed(
    config: PipelineConfig,
    tracking: TrackingRun,
    source: str,
    label_map: dict,
    tokenizer,
    tokenized: dict,
    out_dir: Path,
    checkpoint_dir: Path,
    fingerprint: dict,
    resume_from: Path | None = None,
    resume_dirs: list[Path] | None = None,
):
    """Fine-tune with ``training.num_processes`` ranks under torchrun; rank 0 logs, checkpoints and saves
    the model to ``out_dir/model``. Raises DistributedTrainingError naming the failed rank."""
    from pipeline.training.distributed import launch_fine_tune

    job_dir = out_dir / "distributed"
    tokenizer_dir = job_dir / "tokenizer"
    tokenizer.save_pretrained(tokenizer_dir)
    job = {
        "config": config.model_dump(mode="json"),
        "source": source,
        "label_map": label_map,
        "train": tokenized["train"],
        "validation": tokenized.get("validation"),
        "pad_id": tokenizer.pad_token_id,
        "checkpoint_dir": str(checkpoint_dir),
        "fingerprint": fingerprint,
        "resume_from": str(resume_from) if resume_from else None,
        "resume_dirs": [str(p) for p in resume_dirs or []],
        "tracking_uri": tracking.tracking_uri,
        "run_id": tracking.run_id,
        "tokenizer_dir": str(tokenizer_dir),
        "model_dir": str(out_dir / "model"),
    }
    return launch_fine_tune(config, job_dir, job)
