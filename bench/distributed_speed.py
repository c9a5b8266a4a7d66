"""Training throughput per process count: one process (the plain in-process loop) against N data-parallel
processes under torchrun, same model, data, global batch and optimizer steps.

    python bench/distributed_speed.py --data ../shared/data/sst2 --processes 1,2 --json

A seeded sample of --samples rows of train.tsv is tokenized once; every variant trains --steps optimizer
steps of --batch-size (the global batch). Variants run interleaved, --repeats times; the medians are
reported. ``samples_per_s`` is measured inside the training loop (all ranks' examples over the training
time, no process start or model load); ``wall_s`` is the whole call, torchrun start, model loads and
model save included. On CPU every variant shares the same cores (1 process: all threads; N processes:
cores / N threads each); on CUDA one process per GPU. With --json the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pipeline.config import PACKAGED_MODEL, load_config  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="Folder with train.tsv (text<TAB>label).")
    parser.add_argument("--model", default=PACKAGED_MODEL)
    parser.add_argument("--processes", default="1,2", help="Comma-separated process counts; 1 is the in-process loop.")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def load_split(args, workdir: Path):
    import pandas as pd

    from pipeline.training.modeling import build_label_map, load_tokenizer
    from pipeline.training.tokenization import tokenize_split

    frame = pd.read_csv(args.data / "train.tsv", sep="\t", quoting=3, dtype={"label": str}).dropna()
    frame = frame.sample(n=min(args.samples, len(frame)), random_state=0).reset_index(drop=True)
    tokenizer = load_tokenizer(args.model)
    label_map = build_label_map(frame["label"])
    return tokenizer, label_map, tokenize_split(frame, tokenizer, label_map, 128, None)


def run_variant(processes: int, args, tokenizer, label_map, train, workdir: Path) -> dict:
    from pipeline.training.devices import seed_everything
    from pipeline.training.distributed import launch_fine_tune
    from pipeline.training.loop import fine_tune
    from pipeline.training.modeling import load_model

    out = Path(tempfile.mkdtemp(dir=workdir, prefix=f"p{processes}-"))
    config = load_config(
        overrides=[
            f"model.name_or_path={args.model}",
            f"training.batch_size={args.batch_size}",
            f"training.max_steps={args.steps}",
            f"training.device={args.device}",
            f"training.num_processes={processes}",
            f"training.checkpoint_steps={args.steps + 1}",
        ]
    )
    started = time.perf_counter()
    if processes == 1:
        seed_everything(config.training.seed)
        model = load_model(args.model, label_map, config.model)
        result = fine_tune(
            model, train, None, tokenizer.pad_token_id, config.training, out / "ckpt", {"b": 1}, progress=False
        )
    else:
        tokenizer.save_pretrained(out / "tokenizer")
        job = {
            "config": config.model_dump(mode="json"),
            "source": args.model,
            "label_map": label_map,
            "train": train,
            "validation": None,
            "pad_id": tokenizer.pad_token_id,
            "checkpoint_dir": str(out / "ckpt"),
            "fingerprint": {"b": processes},
            "resume_from": None,
            "tracking_uri": None,
            "run_id": None,
            "tokenizer_dir": str(out / "tokenizer"),
            "model_dir": str(out / "model"),
        }
        result = launch_fine_tune(config, out / "job", job)
    return {"samples_per_s": result.samples_per_s, "wall_s": time.perf_counter() - started, "steps": result.steps}


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    counts = [int(p) for p in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tokenizer, label_map, train = load_split(args, workdir)
        runs: dict[int, list[dict]] = {p: [] for p in counts}
        for repeat in range(args.repeats):
            for processes in counts:
                record = run_variant(processes, args, tokenizer, label_map, train, workdir)
                runs[processes].append(record)
                print(f"repeat {repeat + 1} processes {processes}: {record}", file=sys.stderr, flush=True)
    base = statistics.median(r["samples_per_s"] for r in runs[counts[0]])
    rows = []
    for processes in counts:
        speed = statistics.median(r["samples_per_s"] for r in runs[processes])
        wall = statistics.median(r["wall_s"] for r in runs[processes])
        rows.append(
            {
                "processes": processes,
                "samples_per_s": round(speed, 1),
                "ratio": round(speed / base, 2),
                "wall_s": round(wall, 1),
            }
        )
    print("| processes | samples/s (median) | vs first | wall s (median, start included) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['processes']} | {row['samples_per_s']} | {row['ratio']}x | {row['wall_s']} |")
    if args.json:
        print(
            json.dumps(
                {
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "cpu_count": os.cpu_count(),
                    "rows": rows,
                    "runs": {str(k): v for k, v in runs.items()},
                }
            )
        )


if __name__ == "__main__":
    main()
