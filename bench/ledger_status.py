"""`pipeline data status` over many ledgered files (SQLite ledger): ingest N small files once, then time
`DataStore.pending()` in process and the CLI end to end.

    python bench/ledger_status.py --files 10000

Results go to ``bench/results/ledger_status.md`` (``--out``). Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "bench")]

from ingest_speed import bench_status  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ledger_status.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = bench_status(Path(folder), args.files)
    lines = [
        "# `pipeline data status` over a large SQLite ledger",
        "",
        f"Command: `python bench/ledger_status.py --files {args.files}`",
        "",
        "| measure | seconds |",
        "|---|---|",
        f"| first ingest of all {args.files:,} files, no contract (one process) | {result['ingest_s']:.1f} |",
        f"| `DataStore.pending()` in process (median of 5) | {result['pending_in_process_s']:.3f} |",
        f"| `pipeline data status --json` end to end (median of 5 processes) | {result['cli_status_s']:.2f} |",
        f"| same, fastest of 5 | {result['cli_status_min_s']:.2f} |",
        "",
        f"Machine: 2 CPU cores, shared (load average {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
