"""Ingestion benchmark: rows/s and peak memory for a large CSV, and the cost of `pipeline data status`.

    python bench/ingest_speed.py                 # 1M-row CSV, status over 1,000 ingested files
    python bench/ingest_speed.py --rows 15000000 # about 1 GB of CSV (takes minutes)

Each ingestion runs in a fresh subprocess and reports its own peak RSS (``ru_maxrss``) and the RSS
after imports, so the difference is what ingestion itself needed. Results go to
``bench/results/ingest_speed.md`` (``--out``). Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
WORDS = (
    "the a film movie plot actor story scene great terrible boring moving funny slow sharp warm cold "
    "charming dull clever heavy light dark bright long short music score script ending opening"
).split()


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """Short review-like sentences (about 60 bytes a row), two labels, a few exact duplicates."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("text,label\n")
        for i in range(rows):
            words = " ".join(rng.choices(WORDS, k=rng.randint(5, 12)))
            handle.write(f"{words} {i},{'positive' if rng.random() < 0.5 else 'negative'}\n")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_ingest(args) -> None:
    from pipeline.config import DataConfig
    from pipeline.data.store import DataStore
    from pipeline.workspace import Workspace

    config = DataConfig(chunk_rows=args.chunk_rows, max_rows_in_memory=args.max_rows_in_memory)
    store = DataStore(Workspace(Path(args.workspace)), config)
    import pandas  # noqa: F401  (count the libraries in the baseline, not in ingestion)
    import pyarrow.parquet  # noqa: F401

    from pipeline.data import (
        snapshots,  # noqa: F401
    )

    baseline = peak_rss_mb()
    start = time.perf_counter()
    result = store.ingest([args.file])
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": result.rows_added,
                "snapshot_rows": store.head().manifest.rows,
                "baseline_rss_mb": baseline,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


def child_pending(args) -> None:
    from pipeline.config import DataConfig
    from pipeline.data.store import DataStore
    from pipeline.workspace import Workspace

    store = DataStore(Workspace(Path(args.workspace)), DataConfig())
    times = []
    for _ in range(5):
        start = time.perf_counter()
        pending = store.pending()
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": statistics.median(times), "pending": len(pending)}))


def run_child(*argv: str) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv], env=ENV, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_ingest(folder: Path, rows: int, only_defaults: bool) -> list[dict]:
    csv = folder / "big.csv"
    start = time.perf_counter()
    write_csv(csv, rows)
    print(f"wrote {rows:,} rows ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s", flush=True)
    results = []
    settings = [("defaults", 20_000, 250_000)]
    if not only_defaults:
        settings += [("in memory (no partitions)", 20_000, rows), ("large chunks", 100_000, 250_000)]
    for name, chunk_rows, max_rows in settings:
        workspace = folder / f"ws-{len(results)}"
        result = run_child(
            "child-ingest",
            "--file",
            str(csv),
            "--workspace",
            str(workspace),
            "--chunk-rows",
            str(chunk_rows),
            "--max-rows-in-memory",
            str(max_rows),
        )
        result.update(
            setting=name, chunk_rows=chunk_rows, max_rows_in_memory=max_rows, file_mb=csv.stat().st_size / 1e6
        )
        print(json.dumps(result), flush=True)
        results.append(result)
        shutil.rmtree(workspace)
    csv.unlink()
    return results


def bench_status(folder: Path, files: int) -> dict:
    workspace = folder / "ws-status"
    landing = workspace / "landing"
    landing.mkdir(parents=True)
    for i in range(files):
        (landing / f"batch {i:04d}.csv").write_text(
            "text,label\n" + "".join(f"file {i} row {j},{'ab'[j % 2]}\n" for j in range(20))
        )
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from pipeline.config import DataConfig;"
            "from pipeline.data.store import DataStore; from pipeline.workspace import Workspace;"
            "DataStore(Workspace(Path(sys.argv[1])), DataConfig()).ingest()",
            str(workspace),
        ],
        env=ENV,
        check=True,
    )
    ingest_s = time.perf_counter() - start
    in_process = run_child("child-pending", "--workspace", str(workspace))
    cli = []
    for _ in range(5):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "data", "status", "--json", "--set", f"workspace={workspace}"],
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        cli.append(time.perf_counter() - start)
    status = json.loads(out.stdout)
    assert status["pending_files"] == [] and status["pending_rows"] == 0, status
    return {
        "files": files,
        "ingest_s": ingest_s,
        "pending_in_process_s": in_process["seconds"],
        "cli_status_s": statistics.median(cli),
        "cli_status_min_s": min(cli),
    }


def bench_python_startup() -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def render(args, ingest: list[dict], status: dict, startup: float) -> str:
    import pandas
    import pyarrow

    lines = [
        "# Ingestion benchmark",
        "",
        f"Command: `python bench/ingest_speed.py --rows {args.rows} --files {args.files}"
        f"{' --only-defaults' if args.only_defaults else ''}`",
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end (shared with other "
        f"work), Python {platform.python_version()}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "## Ingest one CSV (parse in chunks, stage as Parquet, deduplicate, write the snapshot)",
        "",
        "Each row is a fresh process; RSS after imports is the baseline, peak RSS includes it.",
        "",
        "| setting | chunk_rows | max_rows_in_memory | file MB | rows | seconds | rows/s | RSS after imports MB | peak RSS MB | ingestion's own MB |",  # noqa: E501  (one Markdown table row)
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ingest:
        lines.append(
            f"| {r['setting']} | {r['chunk_rows']:,} | {r['max_rows_in_memory']:,} | {r['file_mb']:.0f} | "
            f"{r['rows']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | {r['baseline_rss_mb']:.0f} | "
            f"{r['peak_rss_mb']:.0f} | {r['peak_rss_mb'] - r['baseline_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"## `pipeline data status` with {status['files']:,} already-ingested files",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| first ingest of all files (one process) | {status['ingest_s']:.1f} |",
        "| `DataStore.pending()` in process (median of 5; what a scheduler calls) | "
        f"{status['pending_in_process_s']:.3f} |",
        f"| `pipeline data status --json` end to end (median of 5 processes) | {status['cli_status_s']:.2f} |",
        f"| same, fastest of 5 | {status['cli_status_min_s']:.2f} |",
        f"| bare `python -c pass` start (median of 5), for scale | {startup:.2f} |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    ingest = sub.add_parser("child-ingest")
    for flag in ("--file", "--workspace"):
        ingest.add_argument(flag, required=True)
    ingest.add_argument("--chunk-rows", type=int, required=True)
    ingest.add_argument("--max-rows-in-memory", type=int, required=True)
    pending = sub.add_parser("child-pending")
    pending.add_argument("--workspace", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--only-defaults", action="store_true", help="One ingest with the default settings.")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest_speed.md")
    parser.add_argument("--tmp", type=Path, default=None, help="Scratch folder (default: system temp).")
    args = parser.parse_args()
    if args.command == "child-ingest":
        return child_ingest(args)
    if args.command == "child-pending":
        return child_pending(args)
    folder = Path(tempfile.mkdtemp(prefix="ingest-bench-", dir=args.tmp))
    try:
        ingest_results = bench_ingest(folder, args.rows, args.only_defaults)
        status = bench_status(folder, args.files)
        print(json.dumps(status), flush=True)
        report = render(args, ingest_results, status, bench_python_startup())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
