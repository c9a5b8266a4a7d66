"""How long the data contract takes on a large batch, imports excluded.

    python bench/validate_speed.py [--rows 100000] [--data ../shared/data/sst2/train.tsv] \
        [--out bench/results/validate_speed.md]

The current snapshot (allowed labels, conflicts, drift, leakage into its test split) is the first half of the
data file; the batch is ``--rows`` rows made from the second half (repeated rows get a numbered suffix, so
they are not exact duplicates). Without a file, demo tickets. Times are the best of ``--repeat``
runs after one warm-up, in this process, so imports and the tokenizer load are reported separately.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_batch(path: Path | None, rows: int):
    """(snapshot, batch): the first half of the data is the snapshot, the batch is made of the second half."""
    import pandas as pd

    from pipeline.config import DataConfig
    from pipeline.data.demo import generate_demo_rows
    from pipeline.data.readers import read_labeled_file

    source = read_labeled_file(str(path), DataConfig()) if path else generate_demo_rows(rows, seed=5)
    source = source[["text", "label"]].reset_index(drop=True)
    snapshot, pool = source.iloc[: len(source) // 2], source.iloc[len(source) // 2 :].reset_index(drop=True)
    parts = []
    for copy in range(-(-rows // len(pool))):
        part = pool.copy()
        if copy:
            part["text"] = part["text"] + f" ({copy + 1})"
        parts.append(part)
    batch = pd.concat(parts, ignore_index=True).head(rows)
    batch["source"], batch["row"] = "bench.csv", range(1, len(batch) + 1)
    return snapshot.reset_index(drop=True), batch


def best_of(repeat: int, action) -> tuple[float, float, object]:
    """(best wall seconds, CPU seconds of that run, result) after one warm-up run."""
    action()
    best, result = (float("inf"), 0.0), None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = action()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best[0], best[1], result


def main() -> None:
    default_data = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=default_data if default_data.exists() else None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="Write the results as Markdown here too.")
    args = parser.parse_args()

    from pipeline.workspace import apply_environment_defaults

    apply_environment_defaults()  # as the pipeline runs: TOKENIZERS_PARALLELISM=false unless set
    start = time.perf_counter()
    import great_expectations  # noqa: F401

    from pipeline.config import DataConfig, ValidationConfig
    from pipeline.data.readers import normalise_text
    from pipeline.data.splits import split_frame
    from pipeline.training.modeling import load_tokenizer
    from pipeline.validation.columns import ContractReference, derive_columns
    from pipeline.validation.contract import validate_frame

    imports = time.perf_counter() - start
    start = time.perf_counter()
    tokenizer = load_tokenizer("packaged:all-minilm-l6-v2")
    tokenizer_load = time.perf_counter() - start

    snapshot, batch = build_batch(args.data, args.rows)
    context_s, _, (reference, test_texts) = best_of(
        args.repeat,
        lambda: (
            ContractReference.from_frame(snapshot),
            set(split_frame(snapshot, DataConfig())["test"]["text"].map(normalise_text)),
        ),
    )
    labels = sorted(snapshot["label"].astype(str).unique())
    rows = []

    def measure(name: str, config: ValidationConfig, with_tokenizer: bool, docs=None) -> None:
        def run():
            return validate_frame(
                batch,
                config,
                allowed_labels=labels,
                tokenizer=tokenizer if with_tokenizer else None,
                max_length=128,
                reference=reference,
                test_texts=test_texts,
                docs=docs,
            )

        seconds, cpu, result = best_of(args.repeat, run)
        derive_s, _, _ = best_of(
            args.repeat,
            lambda: derive_columns(
                batch, tokenizer if with_tokenizer else None, test_texts, reference, config.token_check_rows
            ),
        )
        rows.append(
            (
                name,
                seconds,
                cpu,
                derive_s,
                len(result.checks),
                "passed" if result.success else f"failed: {', '.join(f['rule'] for f in result.failures)}",
            )
        )

    measure("contract without tokenizer checks", ValidationConfig(), False)
    measure(
        f"contract, token checks on a {ValidationConfig().token_check_rows:,}-row sample (default)",
        ValidationConfig(),
        True,
    )
    measure("contract, token checks on every row", ValidationConfig(token_check_rows=None), True)
    import tempfile

    from pipeline.validation.data_docs import DataDocs

    with tempfile.TemporaryDirectory() as folder:
        measure("default contract + offline Data Docs", ValidationConfig(), True, DataDocs.in_reports(Path(folder)))

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    lines = [
        f"# Data contract speed: {len(batch):,} rows",
        "",
        f"Command: `python bench/validate_speed.py --rows {args.rows}"
        + (f" --data {args.data}" if args.data else "")
        + "`",
        "",
        f"Machine: {os.cpu_count()} CPU cores ({cpu}), load average {os.getloadavg()[0]:.1f} at the end "
        f"(other work shares these cores), Python {platform.python_version()}, "
        f"TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', '(unset)')}. "
        f"Batch made from {args.data or 'demo tickets'}; snapshot of {len(snapshot):,} rows. "
        f"Best of {args.repeat} after a warm-up.",
        "",
        f"One-off costs, not counted below: imports {imports:.2f} s, tokenizer load {tokenizer_load:.2f} s, "
        f"snapshot context (normalised texts, test split) {context_s:.2f} s per batch.",
        "",
        "| run | wall s | CPU s | of which derived columns (wall s) | checks | result |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {total:.2f} | {cpu:.2f} | {derive:.2f} | {checks} | {status} |"
        for name, total, cpu, derive, checks, status in rows
    ]
    lines += [
        "",
        "CPU s is this process's CPU time (all threads): on a shared machine it is the better guide to the "
        "unloaded wall time of the single-threaded parts. The default tokenizer checks tokenize "
        "`validation.token_check_rows` sampled rows plus every row without a letter or digit; tokenizing every "
        "row costs about 4-5 s per 100k rows on these cores. Data Docs rendering is reporting, not "
        "validation: `validation.data_docs: false` leaves it out.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
