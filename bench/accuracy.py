"""Accuracy of the pipeline's defaults on two public data sets, against fixed targets.

    python bench/accuracy.py --data ../shared/data                     # the full benchmark (GPU: minutes)
    python bench/accuracy.py --data ../shared/data --max-train-samples 1000 --epochs 1   # a quick CPU check

SST-2: train on sst2/train.tsv, report sst2/validation.tsv (the pinned holdout). BANKING77: train on
banking77/train.tsv, report banking77/test.tsv. Each runs the pipeline's own stages as a training run
does (pipeline.data.steps.split_snapshot, pipeline.training.steps.tokenize_splits / train_model),
without the MLflow and Prefect
layers and without the snapshot store: the file is split by text hash into train and validation
(``data.validation_share``) with the holdout pinned as the test split (its texts removed from training),
tokenized, fine-tuned with early stopping on the validation split, and the best epoch scored on the
holdout. Every setting is the embedded default of ``PipelineConfig`` for the packaged MiniLM; only
--device, --epochs and --max-train-samples (quick checks) and --set (experiments, reported as such and
never counted as the defaults' result) change anything. Targets: SST-2 >= 0.91, BANKING77 >= 0.92.

Model selection uses --no-holdout: only the validation split carved from the training file is scored
(``validation_accuracy``), so hyperparameters are never chosen on the reported holdout; --seed repeats.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pipeline.config import load_config  # noqa: E402

DATASETS = {
    "sst2": {"train": "sst2/train.tsv", "holdout": "sst2/validation.tsv", "target": 0.91},
    "banking77": {"train": "banking77/train.tsv", "holdout": "banking77/test.tsv", "target": 0.92},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="Folder holding sst2/ and banking77/.")
    parser.add_argument("--datasets", default="sst2,banking77", help="Comma-separated subset of: sst2, banking77.")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--epochs", type=int, default=None, help="Override training.epochs (quick checks only).")
    parser.add_argument("--max-train-samples", type=int, default=None, help="Cap on training rows (quick checks only).")
    parser.add_argument("--model", default=None, help="Model id or folder instead of model.name_or_path's default.")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="Extra override, e.g. training.learning_rate=1e-4: an experiment, not the defaults.",
    )
    parser.add_argument("--cache", type=Path, default=None, help="Token cache folder (default: none).")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    parser.add_argument(
        "--no-holdout",
        action="store_true",
        help="Model selection: report only the validation split carved from training data; the "
        "holdout is still kept out of training but never scored.",
    )
    parser.add_argument("--seed", type=int, default=None, help="Override training.seed (repeats over seeds).")
    parser.add_argument("--json", action="store_true", help="Print one JSON object as the last line of stdout.")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON result to this file.")
    return parser.parse_args(argv)


def read_tsv(path: Path) -> pd.DataFrame:
    """text/label columns as strings; quoted fields may span lines (BANKING77's export does)."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise SystemExit(f"{path}: missing column(s) {sorted(missing)}")
    return frame[["text", "label"]]


def build_settings(args: argparse.Namespace) -> list[str]:
    settings = [f"training.device={args.device}"]
    if args.epochs:
        settings.append(f"training.epochs={args.epochs}")
    if args.max_train_samples:
        settings.append(f"data.max_samples={args.max_train_samples}")
    if args.seed is not None:
        settings.append(f"training.seed={args.seed}")
    if args.model:
        settings.append(f"model.name_or_path={args.model}")
    return settings + list(args.overrides)


def run_dataset(name: str, args: argparse.Namespace) -> dict:
    from pipeline.data.splits import split_frame
    from pipeline.evaluation.metrics import classification_metrics
    from pipeline.training.devices import seed_everything, select_device
    from pipeline.training.inference import predict_proba
    from pipeline.training.loop import evaluate_split, fine_tune
    from pipeline.training.modeling import build_label_map, load_model, load_tokenizer
    from pipeline.training.tokenization import tokenize_split

    spec = DATASETS[name]
    config = load_config(overrides=build_settings(args), environ={})
    started = time.perf_counter()
    frame, holdout = read_tsv(args.data / spec["train"]), read_tsv(args.data / spec["holdout"])
    splits = split_frame(frame, config.data, holdout)
    if config.data.max_samples and len(splits["train"]) > config.data.max_samples:
        splits["train"] = splits["train"].sample(config.data.max_samples, random_state=config.training.seed)
    tokenizer = load_tokenizer(config.model.name_or_path)
    label_map = build_label_map(pd.concat([s["label"] for s in splits.values()]))
    tokenized = {
        split: tokenize_split(part, tokenizer, label_map, config.model.max_length, args.cache)
        for split, part in splits.items()
    }
    tokenize_seconds = time.perf_counter() - started
    device = select_device(config.training.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seed_everything(config.training.seed)
    model = load_model(config.model.name_or_path, label_map, config.model)
    with tempfile.TemporaryDirectory() as folder:
        result = fine_tune(
            model,
            tokenized["train"],
            tokenized["validation"],
            tokenizer.pad_token_id,
            config.training,
            Path(folder),
            {"benchmark": name},
            progress=not args.no_progress,
        )
    test = tokenized["test"]
    validation = evaluate_split(result.model, tokenized["validation"], tokenizer.pad_token_id, config.training, device)
    metrics = {"accuracy": None, "macro_f1": None}
    if not args.no_holdout:
        proba = predict_proba(
            result.model,
            test.input_ids,
            tokenizer.pad_token_id,
            config.training.eval_batch_size,
            device,
            config.training.bf16,
        )
        metrics = classification_metrics(test.labels, proba.argmax(axis=1), len(label_map))
    wall = time.perf_counter() - started
    return {
        "dataset": name,
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "target": spec["target"],
        "validation_accuracy": validation["accuracy"],
        "validation_macro_f1": validation["macro_f1"],
        "meets_target": metrics["accuracy"] is not None and metrics["accuracy"] >= spec["target"],
        "wall_seconds": wall,
        "train_seconds": result.train_seconds,
        "tokenize_seconds": tokenize_seconds,
        "samples_per_s": result.samples_per_s,
        "steps": result.steps,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "history": result.history,
        "labels": len(label_map),
        "rows": {split: len(part) for split, part in tokenized.items()},
        "device": result.device,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "train_mean_tokens": float(np.mean(tokenized["train"].lengths)),
        "test_mean_tokens": float(np.mean(test.lengths)),
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    from pipeline.workspace import apply_environment_defaults

    apply_environment_defaults()  # offline, quiet: no telemetry, no hub progress bars
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        raise SystemExit(f"unknown data set(s) {unknown}; choose from {sorted(DATASETS)}")
    settings = build_settings(args)
    config = load_config(overrides=settings, environ={})
    quick = bool(args.epochs or args.max_train_samples or args.overrides or args.model)
    results = []
    for name in names:
        print(
            f"[{name}] training with {'overrides ' + str(settings) if quick else 'the pipeline defaults'}",
            file=sys.stderr,
            flush=True,
        )
        results.append(run_dataset(name, args))
        r = results[-1]
        held = (
            "holdout not scored"
            if r["accuracy"] is None
            else f"holdout accuracy {r['accuracy']:.4f} macro-F1 "
            f"{r['macro_f1']:.4f} (target {r['target']:.2f}: {'met' if r['meets_target'] else 'MISSED'})"
        )
        print(
            f"[{name}] validation accuracy {r['validation_accuracy']:.4f}, {held}, {r['wall_seconds']:.0f}s wall, "
            f"{r['samples_per_s']:.0f} samples/s on {r['device']}",
            flush=True,
        )
    summary = {
        "results": {r["dataset"]: r for r in results},
        "defaults_only": not quick,
        "settings": settings,
        "training": config.training.model_dump(),
        "model": config.model.model_dump(),
        "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2, default=str))
    if args.json:
        print(json.dumps(summary, default=str))
    return summary


if __name__ == "__main__":
    main()
