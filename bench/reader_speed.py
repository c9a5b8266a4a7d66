"""Strict CSV reader versus pandas' C parser on the same file: what refusing unbalanced quotes costs.

    python bench/reader_speed.py --rows 300000 --repeats 3

Variants run interleaved, ``--repeats`` times each, in this process; medians are reported. The pandas
variant is the lax parse the strict reader replaced (``read_csv`` in chunks, C engine, strings only).
Results go to ``bench/results/reader_speed.md`` (``--out``). Not part of the test run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "bench")]

from ingest_speed import write_csv  # noqa: E402


def read_pandas(path: Path, chunk_rows: int) -> int:
    import pandas as pd

    with pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows) as reader:
        return sum(len(chunk) for chunk in reader)


def read_strict(path: Path, chunk_rows: int) -> int:
    from pipeline.config import DataConfig
    from pipeline.data.readers import iter_labeled_chunks

    return sum(len(chunk) for chunk in iter_labeled_chunks(str(path), DataConfig(chunk_rows=chunk_rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "reader_speed.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        write_csv(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        variants = {
            "pandas read_csv (C engine, lax quotes)": read_pandas,
            "strict reader (iter_labeled_chunks)": read_strict,
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, read in variants.items():
                start = time.perf_counter()
                rows = read(path, args.chunk_rows)
                times[name].append(time.perf_counter() - start)
                assert rows == args.rows, (name, rows)
    base = statistics.median(times["pandas read_csv (C engine, lax quotes)"])
    lines = [
        "# Strict reader versus pandas' parser",
        "",
        f"Command: `python bench/reader_speed.py --rows {args.rows} --repeats {args.repeats}`",
        "",
        f"Machine: 2 CPU cores, shared (load average {__import__('os').getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}. File: {size_mb:.0f} MB, "
        f"{args.rows:,} rows, chunks of {args.chunk_rows:,}.",
        "",
        "| reader | median s | rows/s | time vs pandas |",
        "|---|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.2f} | {args.rows / median:,.0f} | {median / base:.2f}x |")
    lines += [
        "",
        "Both include turning the chunks into frames; the strict reader also builds the labeled "
        "columns (text, label, source, row) the store writes to Parquet.",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
