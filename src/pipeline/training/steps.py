"""Entry points of the training stage: tokenize the splits, fine-tune and save the model."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.registry import tracking as registry
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


def tokenize_splits(splits: dict[str, pd.DataFrame], config: PipelineConfig, workspace: Workspace):
    """(tokenizer, label map, {split: TokenizedSplit}) using the content-keyed cache."""
    from pipeline.training.modeling import build_label_map, load_tokenizer
    from pipeline.training.tokenization import tokenize_split

    tokenizer = load_tokenizer(config.model.name_or_path)
    label_map = build_label_map(pd.concat([s["label"] for s in splits.values()]))
    tokenized = {name: tokenize_split(frame, tokenizer, label_map, config.model.max_length, workspace.cache / "tokens")
                 for name, frame in splits.items()}
    return tokenizer, label_map, tokenized


def training_fingerprint(config: PipelineConfig, snapshot_id: str, train_key: str, label_map: dict, base: str) -> dict:
    """What a checkpoint must match to be resumed: data, labels, model source and every training knob."""
    training = config.training.model_dump(exclude={"num_threads", "checkpoint_steps", "keep_checkpoints", "resume_from", "device"})
    return {"snapshot_id": snapshot_id, "train_tokens": train_key, "base_model": base,
            "labels": hashlib.sha256(json.dumps(label_map, sort_keys=True).encode()).hexdigest()[:16],
            "model": json.dumps(config.model.model_dump(exclude={"warm_start"}), sort_keys=True),
            "training": json.dumps(training, sort_keys=True)}


def train_model(config: PipelineConfig, workspace: Workspace, tracking: dict, snapshot_id: str, tokenizer,
                label_map: dict, tokenized: dict, warm_start_dir: str | None = None, progress: bool = True,
                on_progress=None) -> dict:
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
    from pipeline.training.loop import clear_checkpoints, fine_tune, seed_everything
    from pipeline.training.modeling import load_model, save_model

    client = registry.client(tracking["tracking_uri"])
    run_id = tracking["run_id"]
    out_dir = workspace.runs / run_id
    source, source_id, warm_tag = config.model.name_or_path, config.model.name_or_path, None
    if warm_start_dir:
        source = source_id = warm_tag = warm_start_dir
    elif config.model.warm_start:
        from pipeline.training.warm_start import resolve_warm_start

        warm = resolve_warm_start(tracking["tracking_uri"], config.registry.model_name, config.model.name_or_path,
                                  label_map, out_dir / "warm_start")
        source, source_id, warm_tag = warm.source, warm.champion_uri or config.model.name_or_path, warm.tag()
    if warm_tag:
        client.set_tag(run_id, "warm_start", warm_tag)
    fingerprint = training_fingerprint(config, snapshot_id, tokenized["train"].cache_key, label_map, source_id)
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    checkpoint_dir = workspace.checkpoints / config.registry.model_name / key
    resume_from = Path(config.training.resume_from) if config.training.resume_from else None
    seed_everything(config.training.seed)
    model = load_model(source, label_map, config.model)

    def on_epoch(record: dict) -> None:
        registry.log_metrics(client, run_id, {k: v for k, v in record.items() if k not in ("epoch", "step")},
                             step=record["epoch"])

    def on_resume(info: dict) -> None:
        record_resume(client, run_id, info)
        for record in info["history"]:  # epochs finished before the interruption belong to this run's curve too
            on_epoch(record)

    result = fine_tune(model, tokenized["train"], tokenized.get("validation"), tokenizer.pad_token_id,
                       config.training, checkpoint_dir, fingerprint, resume_from=resume_from, on_epoch=on_epoch,
                       progress=progress, on_resume=on_resume, checkpoint_meta={"mlflow_run_id": run_id},
                       on_step=on_progress)
    model_dir = save_model(result.model, tokenizer, out_dir / "model")
    registry.write_model_meta(model_dir, {"max_length": config.model.max_length, "label_map": label_map,
                                          "base_model": config.model.name_or_path, "snapshot_id": snapshot_id,
                                          "warm_started_from": source_id if source_id != config.model.name_or_path else None})
    curve = plot_training_curve(result.history, result.step_log, out_dir / "training_curve.png")
    registry.log_metric_series(client, run_id, result.step_log, "step")
    registry.log_metrics(client, run_id, {"train_samples_per_s": result.samples_per_s,
                                          "train_seconds": result.train_seconds, "optimizer_steps": result.steps})
    client.log_artifact(run_id, str(curve), "plots")
    client.set_tag(run_id, "device", result.device)
    client.set_tag(run_id, "resumed", str(result.resumed_from_step is not None).lower())
    np.save(out_dir / "sample_counts.npy", result.sample_counts)
    clear_checkpoints(checkpoint_dir)
    return {"model_dir": str(model_dir), "history": result.history, "steps": result.steps,
            "planned_steps": result.planned_steps, "resumed_from_step": result.resumed_from_step,
            "samples_per_s": result.samples_per_s, "train_seconds": result.train_seconds, "device": result.device,
            "best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
            "train_rows": len(tokenized["train"]), "warm_start": warm_tag,
            "sample_counts": str(out_dir / "sample_counts.npy")}


def record_resume(client, run_id: str, info: dict) -> None:
    """Tag the run with where it resumed; mark the run that wrote the checkpoint KILLED if still RUNNING."""
    previous = (info.get("meta") or {}).get("mlflow_run_id")
    client.set_tag(run_id, "resumed_from_step", str(info["step"]))
    client.set_tag(run_id, "resumed_from_checkpoint", info["checkpoint"])
    if previous and previous != run_id:
        client.set_tag(run_id, "resumed_from_run", previous)
        try:
            if client.get_run(previous).info.status == "RUNNING":
                client.set_tag(previous, "failure_reason", f"interrupted; resumed by run {run_id} at step {info['step']}")
                registry.end_run(client, previous, status="KILLED")
        except Exception as exc:  # the old run may live in another store; the resume itself is what matters
            logger.warning("could not mark run %s as KILLED: %s", previous, exc)
