"""Training throughput of this pipeline against the common ways of fine-tuning, in one process.

    python bench/train_speed.py --data ../shared/data/sst2 --samples 2048 --json

Same model (the packaged MiniLM unless --model), same data subset (a seeded sample of --samples rows of
train.tsv), same batch size and the same number of optimizer steps for every variant; each variant's
first step is a warm-up and is not timed. The variants:

  (a) seed_recipe        the classic tutorial: a torch Dataset that tokenizes each example in
                         __getitem__ padded to 128 tokens, a DataLoader, a plain loop with .item() per step
  (b) run_glue_default   transformers' run_glue.py defaults: every example padded to max_seq_length=128
                         up front (batched), then Trainer (its defaults: fp32, fused AdamW, clipping)
  (c) bare_dynamic       the floor of overhead: a bare loop (forward, backward, AdamW defaults) on the
                         same token batches as (d), dynamically padded, nothing else
  (d) pipeline           pipeline.training.loop.fine_tune with the pipeline's default TrainingConfig
                         (length-grouped batches, dynamic padding, fused AdamW, clipping, schedule;
                         on CUDA bf16 autocast and TF32)
  (e) trainer_best       the strongest Trainer a practitioner would configure: unpadded tokens in a
                         datasets.Dataset with a length column, DataCollatorWithPadding,
                         train_sampling_strategy="group_by_length", optim="adamw_torch_fused" (on CUDA
                         also bf16 and TF32)
  (f) bare_fused         the floor with the best optimizer: the bare loop of (c) with fused AdamW, on the
                         same length-grouped batches as (d) (on CUDA bf16 autocast and TF32 too)

(a) and (b) run with PyTorch's defaults (fp32, TF32 off on CUDA), as their recipes do. Every variant is
repeated --repeats times, all interleaved (a b c d c' e f, a b c d ...), and the median of each is reported
(this machine is shared). Extra, for context: (c') bare_dynamic_random_order, the bare loop on randomly
composed batches (what length grouping saves).

Model FLOP/s counts 6 x (parameters outside the embedding tables) x real (non-padding) tokens per
second, the usual forward+backward estimate; attention's sequence-length-dependent FLOPs and the
padding tokens are not counted. The matmul rate is measured in the same run: fp32 on CPU, fp32 (TF32
off) and bf16 on CUDA. With --json the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from pipeline.config import PACKAGED_MODEL, DataConfig, ModelConfig, TrainingConfig  # noqa: E402
from pipeline.training.batching import collate, epoch_batches  # noqa: E402

PAD_TO = 128
H200_BF16_TFLOPS = 790.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="Folder with train.tsv (text, label), e.g. ../shared/data/sst2")
    parser.add_argument("--samples", type=int, default=2048, help="Rows sampled from train.tsv (the data subset).")
    parser.add_argument(
        "--steps", type=int, default=20, help="Timed optimizer steps per variant (after 1 warm-up step)."
    )
    parser.add_argument("--batch-size", type=int, default=None, help="Default: the pipeline's training.batch_size.")
    parser.add_argument(
        "--repeats", type=int, default=3, help="Repeats of every variant, interleaved; median reported."
    )
    parser.add_argument(
        "--model",
        default=PACKAGED_MODEL,
        help="Model id or folder (default: the packaged MiniLM); 'config:bert-base' builds a randomly "
        "initialised BERT-base (12 layers, 768 wide) with the packaged tokenizer.",
    )
    parser.add_argument(
        "--pipeline-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="TrainingConfig override for (d) only, e.g. max_batch_tokens=8192 (an experiment).",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    parser.add_argument(
        "--skip", default="", help="Comma-separated variants to skip (any but pipeline and bare_fused)."
    )
    parser.add_argument("--json", action="store_true", help="Print one JSON object as the last line of stdout.")
    parser.add_argument("--out", type=Path, default=None, help="Also write the JSON result to this file.")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure_matmul_gflops(device: torch.device, dtype: torch.dtype, size: int, seconds: float = 1.5) -> float:
    """Sustained rate of square matrix products of ``size`` in ``dtype`` (GFLOP/s), after a warm-up."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(10 if device.type == "cuda" else 1):
            a @ b
            runs += 1
        synchronize(device)
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e9


def matmul_params(model: torch.nn.Module) -> int:
    """Parameters that take part in matrix products: everything but embedding tables."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embeddings)


def token_stats(lengths: np.ndarray, batches: list[np.ndarray]) -> tuple[int, int]:
    """(real tokens, computed tokens) of dynamically padded batches."""
    real = sum(int(lengths[b].sum()) for b in batches)
    computed = sum(len(b) * int(lengths[b].max()) for b in batches)
    return real, computed


class Timer:
    """Wall time of the timed steps only (the first step of each variant is a warm-up)."""

    def __init__(self, device: torch.device):
        self.device, self.started, self.seconds = device, None, 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.started = time.perf_counter()

    def stop(self) -> float:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.started
        return self.seconds


def run_seed_recipe(model, tokenizer, texts, labels, order, batch_size, device, lr) -> float:
    """(a) Tokenize in __getitem__, pad to 128, DataLoader, plain loop; returns timed seconds."""
    from transformers import get_linear_schedule_with_warmup

    class TutorialDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(order)

        def __getitem__(self, i):
            encoded = tokenizer(
                texts[order[i]], padding="max_length", truncation=True, max_length=PAD_TO, return_tensors="pt"
            )
            item = {k: v.squeeze(0) for k, v in encoded.items()}
            item["labels"] = torch.tensor(labels[order[i]])
            return item

    loader = torch.utils.data.DataLoader(TutorialDataset(), batch_size=batch_size, shuffle=False)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, len(loader))
    timer, total_loss = Timer(device), 0.0
    for step, batch in enumerate(loader):
        if step == 1:
            timer.start()
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        total_loss += loss.item()
    return timer.stop()


def run_glue_default(model, tokenizer, texts, labels, order, batch_size, device, lr, seed) -> float:
    """(b) Pad everything to 128 up front (batched, as run_glue's datasets.map does), then Trainer."""
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator

    encoded = tokenizer([texts[i] for i in order], padding="max_length", max_length=PAD_TO, truncation=True)
    rows = [{**{k: v[r] for k, v in encoded.items()}, "labels": int(labels[i])} for r, i in enumerate(order)]

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            self.times.append(time.perf_counter())

    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        arguments = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            max_steps=math.ceil(len(order) / batch_size),
            seed=seed,
            disable_tqdm=True,
            use_cpu=device.type == "cpu",
            report_to=[],
        )
        trainer = Trainer(
            model=model, args=arguments, train_dataset=rows, data_collator=default_data_collator, callbacks=[times]
        )
        trainer.train()
    return times.times[-1] - times.times[0]


def run_bare_dynamic(model, ids, labels, batches, pad_id, device, lr) -> float:
    """(c) Forward, backward, AdamW (defaults) on dynamically padded batches; nothing else."""
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    timer = Timer(device)
    for step, indices in enumerate(batches):
        if step == 1:
            timer.start()
        batch = {k: v.to(device) for k, v in collate(ids, labels, indices, pad_id).items()}
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return timer.stop()


def run_bare_fused(model, ids, labels, batches, pad_id, device, lr, bf16: bool) -> float:
    """(f) The bare loop with fused AdamW (and on CUDA bf16 autocast and TF32), on (d)'s batches."""
    from pipeline.training.inference import autocast_context

    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)
    timer = Timer(device)
    for step, indices in enumerate(batches):
        if step == 1:
            timer.start()
        batch = {k: v.to(device, non_blocking=True) for k, v in collate(ids, labels, indices, pad_id).items()}
        with autocast_context(device, bf16):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.nn.functional.cross_entropy(logits.float(), batch["labels"]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return timer.stop()


def run_trainer_best(model, tokenizer, ids, labels, order, batch_size, device, lr, seed, steps) -> float:
    """(e) Trainer as a practitioner tunes it: dynamic padding, length grouping, fused AdamW (bf16 on CUDA).

    It trains one epoch over exactly the rows of the other variants' warm-up and timed batches, grouped by its
    own LengthGroupedSampler, which puts the longest batch first: that batch is the untimed warm-up here, a
    small advantage to this baseline.
    """
    import datasets
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments

    rows = datasets.Dataset.from_dict(
        {
            "input_ids": [ids[i].tolist() for i in order],
            "labels": [int(labels[i]) for i in order],
            "length": [len(ids[i]) for i in order],
        }
    )

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            self.times.append(time.perf_counter())

    times = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        arguments = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            learning_rate=lr,
            max_steps=steps + 1,
            seed=seed,
            disable_tqdm=True,
            report_to=[],
            use_cpu=device.type == "cpu",
            optim="adamw_torch_fused",
            train_sampling_strategy="group_by_length",
            bf16=device.type == "cuda",
            tf32=True if device.type == "cuda" else None,
            save_strategy="no",
            logging_strategy="no",
            dataloader_pin_memory=device.type == "cuda",
        )
        trainer = Trainer(
            model=model,
            args=arguments,
            train_dataset=rows,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[times],
        )
        trainer.train()
    return times.times[-1] - times.times[0]


def run_pipeline(model, tokenized, pad_id, config: TrainingConfig, steps: int) -> float:
    """(d) pipeline.training.loop.fine_tune: a 1-step warm-up call on a copy, then ``steps`` timed steps."""
    from pipeline.training.loop import fine_tune

    with tempfile.TemporaryDirectory() as folder:
        warm = config.model_copy(update={"max_steps": 1})
        fine_tune(copy.deepcopy(model), tokenized, None, pad_id, warm, Path(folder) / "w", {}, progress=False)
        timed = config.model_copy(update={"max_steps": steps})
        result = fine_tune(model, tokenized, None, pad_id, timed, Path(folder) / "t", {}, progress=False)
    if config.max_batch_tokens:  # batches of another size: the time the same number of samples would take
        return result.train_seconds * steps * config.batch_size / max(int(result.sample_counts.sum()), 1)
    return result.train_seconds


def build_config_model(name: str, folder: Path) -> str:
    """A randomly initialised model from a config ('config:bert-base'), saved with the packaged tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    from pipeline.training.modeling import load_tokenizer

    if name != "config:bert-base":
        raise SystemExit(f"unknown config model {name!r}; known: config:bert-base")
    tokenizer = load_tokenizer(PACKAGED_MODEL)
    BertForSequenceClassification(BertConfig(vocab_size=tokenizer.vocab_size)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def load_subset(folder: Path, samples: int, seed: int):
    from pipeline.data.readers import read_labeled_file

    frame = read_labeled_file(str(folder / "train.tsv"), DataConfig())
    if samples < len(frame):
        frame = frame.sample(samples, random_state=seed).reset_index(drop=True)
    return frame


def peak_memory_gb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def baseline_precision(device: torch.device) -> None:
    """PyTorch's defaults for the recipes that do not choose otherwise (fine_tune turns TF32 on)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def main(argv=None) -> dict:
    args = parse_args(argv)
    from pipeline.workspace import apply_environment_defaults

    apply_environment_defaults()  # offline, quiet: no telemetry, no hub progress bars
    logging.basicConfig(level=logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    from pipeline.training.devices import seed_everything, select_device
    from pipeline.training.modeling import build_label_map, load_model, load_tokenizer
    from pipeline.training.tokenization import tokenize_split

    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(args.device)
    if args.model.startswith("config:"):
        args.model = build_config_model(args.model, Path(tempfile.mkdtemp(prefix="config-model-")))
    config = TrainingConfig(device=device.type)
    batch_size = args.batch_size or config.batch_size
    config = config.model_copy(update={"batch_size": batch_size})
    pipeline_config = TrainingConfig.model_validate(
        {**config.model_dump(), **dict(kv.split("=", 1) for kv in args.pipeline_set)}
    )
    steps = args.steps
    if (steps + 1) * batch_size > args.samples:
        raise SystemExit(f"--samples {args.samples} is too few for {steps + 1} steps of {batch_size}")

    frame = load_subset(Path(args.data), args.samples, config.seed)
    tokenizer = load_tokenizer(args.model)
    label_map = build_label_map(frame["label"])
    started = time.perf_counter()
    tokenized = tokenize_split(frame, tokenizer, label_map, ModelConfig().max_length, None)
    tokenize_seconds = time.perf_counter() - started
    texts, labels, lengths = frame["text"].tolist(), tokenized.labels, tokenized.lengths
    pad_id = tokenizer.pad_token_id

    # fine_tune(max_steps=S) trains on the first S batches of its epoch-0 order; the others use the same
    # examples (the baselines: one warm-up batch first, then those S batches).
    grouped = epoch_batches(lengths, batch_size, config.seed, 0, config.group_by_length)
    full = [b for b in grouped if len(b) == batch_size]
    timed_batches = grouped[:steps]
    warmup_batch = next(b for b in full if not any(b is t for t in timed_batches))
    baseline_batches = [warmup_batch, *timed_batches]
    order = np.concatenate(baseline_batches)
    random_batches = epoch_batches(lengths, batch_size, config.seed, 0, group_by_length=False)[: steps + 1]

    seed_everything(config.seed)
    template = load_model(args.model, label_map, ModelConfig()).cpu()
    n_matmul = matmul_params(template)
    timed_samples = sum(len(b) for b in timed_batches)
    lr = config.learning_rate
    log(
        f"device {device}, {torch.get_num_threads()} threads, {len(frame)} rows, batch {batch_size}, "
        f"{steps} timed steps ({timed_samples} samples) per variant; tokenized in {tokenize_seconds:.2f}s"
    )

    seconds: dict[str, list[float]] = {}
    peaks: dict[str, float | None] = {}
    skip = set(filter(None, args.skip.split(",")))

    def record(name: str, fn) -> None:
        reset_peak(device)
        seed_everything(config.seed)
        value = fn(copy.deepcopy(template))
        seconds.setdefault(name, []).append(value)
        peaks[name] = max(filter(None, [peaks.get(name), peak_memory_gb(device)]), default=None)
        log(f"  {name:<28} {timed_samples / value:9.1f} samples/s  ({value:.2f}s)")

    for _ in range(args.repeats):
        if "seed_recipe" not in skip:
            baseline_precision(device)
            record("seed_recipe", lambda m: run_seed_recipe(m, tokenizer, texts, labels, order, batch_size, device, lr))
        if "run_glue_default" not in skip:
            baseline_precision(device)
            record(
                "run_glue_default",
                lambda m: run_glue_default(m, tokenizer, texts, labels, order, batch_size, device, lr, config.seed),
            )
        if "bare_dynamic" not in skip:
            baseline_precision(device)
            record(
                "bare_dynamic",
                lambda m: run_bare_dynamic(m, tokenized.input_ids, labels, baseline_batches, pad_id, device, lr),
            )
        record("pipeline", lambda m: run_pipeline(m, tokenized, pad_id, pipeline_config, steps))
        if "bare_dynamic_random_order" not in skip:
            baseline_precision(device)
            record(
                "bare_dynamic_random_order",
                lambda m: run_bare_dynamic(m, tokenized.input_ids, labels, random_batches, pad_id, device, lr),
            )
        if "trainer_best" not in skip:
            baseline_precision(device)
            record(
                "trainer_best",
                lambda m: run_trainer_best(
                    m, tokenizer, tokenized.input_ids, labels, order, batch_size, device, lr, config.seed, steps
                ),
            )
        baseline_precision(device)
        record(
            "bare_fused",
            lambda m: run_bare_fused(m, tokenized.input_ids, labels, baseline_batches, pad_id, device, lr, config.bf16),
        )

    per_s = {name: timed_samples / statistics.median(values) for name, values in seconds.items()}
    real, computed = token_stats(lengths, timed_batches)
    epoch_real, epoch_computed = token_stats(lengths, grouped)
    random_real, random_computed = token_stats(lengths, random_batches[1:])
    real_tokens_per_s = real / statistics.median(seconds["pipeline"])
    model_gflops = 6 * n_matmul * real_tokens_per_s / 1e9
    baseline_precision(device)
    matmul = measure_matmul_gflops(device, torch.float32, 8192 if device.type == "cuda" else 1024)
    bf16_matmul = measure_matmul_gflops(device, torch.bfloat16, 8192) if device.type == "cuda" else None

    def ratio(name: str) -> float | None:
        return per_s["pipeline"] / per_s[name] if name in per_s else None

    result = {
        "samples_per_s": {
            k: per_s.get(k)
            for k in ("seed_recipe", "run_glue_default", "bare_dynamic", "pipeline", "trainer_best", "bare_fused")
        },
        "ratios": {
            "vs_seed_recipe": ratio("seed_recipe"),
            "vs_run_glue_default": ratio("run_glue_default"),
            "vs_bare_dynamic": ratio("bare_dynamic"),
            "vs_trainer_best": ratio("trainer_best"),
            "vs_bare_fused": ratio("bare_fused"),
        },
        "real_token_share": real / computed,
        "matmul_gflops": matmul,
        "model_gflops": model_gflops,
        "details": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name() if device.type == "cuda" else None,
            "threads": torch.get_num_threads(),
            "model": args.model,
            "matmul_params": n_matmul,
            "pipeline_overrides": args.pipeline_set,
            "data": str(args.data),
            "mean_tokens": float(lengths.mean()),
            "samples": len(frame),
            "batch_size": batch_size,
            "timed_steps": steps,
            "timed_samples": timed_samples,
            "repeats": args.repeats,
            "seconds": seconds,
            "spread": {k: (max(v) - min(v)) / statistics.median(v) for k, v in seconds.items()},
            "tokenize_seconds": tokenize_seconds,
            "bare_dynamic_random_order_samples_per_s": per_s.get("bare_dynamic_random_order"),
            "skipped": sorted(skip),
            "random_order_real_token_share": random_real / random_computed,
            "epoch_real_token_share": epoch_real / epoch_computed,
            "padded_to_128_real_token_share": real / (timed_samples * PAD_TO),
            "real_tokens_per_s": real_tokens_per_s,
            "model_flops_share_of_fp32_matmul": model_gflops / matmul,
            "bf16_matmul_gflops": bf16_matmul,
            "model_flops_share_of_bf16_matmul": model_gflops / bf16_matmul if bf16_matmul else None,
            "model_flops_share_of_790_tflops_bf16": model_gflops / (H200_BF16_TFLOPS * 1e3)
            if device.type == "cuda"
            else None,
            "peak_gpu_memory_gb": peaks if device.type == "cuda" else None,
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
        },
    }
    print_summary(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
    return result


def print_summary(result: dict) -> None:
    per_s, ratios, details = result["samples_per_s"], result["ratios"], result["details"]
    lines = [f"{'variant':<28}{'samples/s':>12}"]
    lines += [f"{name:<28}{value:>12.1f}" for name, value in per_s.items() if value is not None]
    if details["bare_dynamic_random_order_samples_per_s"]:
        lines.append(f"{'bare_dynamic_random_order':<28}{details['bare_dynamic_random_order_samples_per_s']:>12.1f}")
    lines.append("ratios: " + ", ".join(f"d/{k[3:]}={v:.2f}" for k, v in ratios.items() if v is not None))
    lines.append(
        f"real-token share: pipeline {result['real_token_share']:.1%} (whole epoch "
        f"{details['epoch_real_token_share']:.1%}), random batches {details['random_order_real_token_share']:.1%}, "
        f"padded to 128 {details['padded_to_128_real_token_share']:.1%}"
    )
    lines.append(
        f"model {result['model_gflops']:.1f} GFLOP/s on real tokens = "
        f"{details['model_flops_share_of_fp32_matmul']:.1%} of the measured fp32 matmul rate "
        f"({result['matmul_gflops']:.1f} GFLOP/s)"
    )
    if details["bf16_matmul_gflops"]:
        lines.append(
            f"bf16 matmul {details['bf16_matmul_gflops'] / 1e3:.0f} TFLOP/s; model = "
            f"{details['model_flops_share_of_790_tflops_bf16']:.2%} of 790 TFLOP/s bf16; "
            "peak GPU memory (GB) "
            f"{json.dumps({k: round(v, 2) for k, v in details['peak_gpu_memory_gb'].items() if v})}"
        )
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
