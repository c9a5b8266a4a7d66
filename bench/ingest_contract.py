"""Ingest through the data contract (what `pipeline data ingest` runs): cost per small file and peak
memory against file size.

    python bench/ingest_contract.py --files 1000 --rows 15000000    # the recorded run: 1,000 small files, 1 GB
    python bench/ingest_contract.py --files 0 --rows 1000000          # one large file only

Each measurement runs in a fresh process (``ru_maxrss`` is per process); data docs are off so that only
validation is timed. Results go to ``bench/results/ingest_contract.md`` (``--out``). Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}{os.pathsep}{REPO / 'bench'}"}


def child(workspace: str) -> None:
    from pipeline.config import load_config
    from pipeline.data import steps as data_steps
    from pipeline.workspace import Workspace

    config = load_config(overrides=[f"workspace={workspace}", "validation.data_docs=false"])
    workspace_ = Workspace.resolve(config.workspace).ensure()
    from pipeline.training.modeling import load_tokenizer

    load_tokenizer(config.model.name_or_path)
    import great_expectations  # noqa: F401  (imports count in the baseline, not in ingestion)

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    outcome = data_steps.ingest_and_validate(config, workspace_)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "files": len(outcome.new_files),
                "quarantined": len(outcome.quarantined),
                "rows": outcome.rows_added,
                "baseline_mb": baseline,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def run(workspace: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(workspace)], env=ENV, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child")
    parser.add_argument("--files", type=int, default=30)
    parser.add_argument("--rows", type=int, nargs="*", default=[50_000, 200_000])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ingest_contract.md")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    from ingest_speed import write_csv

    rng = random.Random(0)
    lines = [
        "# Ingest through the data contract",
        "",
        f"Command: `python bench/ingest_contract.py --files {args.files} --rows {' '.join(map(str, args.rows))}`",
        "",
        "| case | files | rows | MB | seconds | per file s | RSS after imports MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "small"
        (small / "landing").mkdir(parents=True)
        for i in range(args.files):
            with open(small / "landing" / f"f{i}.csv", "w") as handle:
                handle.write("text,label\n")
                for j in range(rng.randint(2, 50)):
                    handle.write(f"file {i} sentence {j} about the parcel,{'ab'[j % 2]}\n")
        if args.files:
            result = run(small)
            lines.append(
                f"| small files (2-50 rows) | {result['files']} | {result['rows']} | - | {result['seconds']:.1f} | "
                f"{result['seconds'] / max(result['files'], 1):.3f} | {result['baseline_mb']:.0f} | "
                f"{result['peak_mb']:.0f} |"
            )
        for rows in args.rows:
            big = Path(folder) / f"big{rows}"
            (big / "landing").mkdir(parents=True)
            write_csv(big / "landing" / "big.csv", rows)
            size = (big / "landing" / "big.csv").stat().st_size / 1e6
            result = run(big)
            lines.append(
                f"| one CSV | 1 | {result['rows']:,} | {size:.0f} | {result['seconds']:.1f} | - | "
                f"{result['baseline_mb']:.0f} | {result['peak_mb']:.0f} |"
            )
    lines += [
        "",
        f"Machine: 2 CPU cores, shared (load average {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
