"""`pipeline data status` over many ledgered files (SQLite ledger): ingest N small files once, then time
`DataStore.pending()` in process and the CLI end to end.

    python bench/ledger_status.py --files 10000

Results go to ``bench/results/ledger_status.md`` (``--out``). Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "bench")]

from ingest_speed import bench_status  # noqa: E402


def fsspec_listing(folder: str) -> list[str]:
    """The landing zone's former listing, kept as the baseline: fsspec's recursive find, then pathlib checks."""
    import fsspec

    from pipeline.data.sources import is_supported

    fs = fsspec.filesystem("file")
    found = []
    for match in sorted(p for p in fs.find(folder) if not Path(p).name.startswith(".")):
        if not (Path(match).is_symlink() and Path(match).is_dir()) and is_supported(match):
            found.append(match)
    return found


def compare_listings(folder: Path, files: int, repeats: int = 5) -> dict:
    """Median seconds of each listing over the same folder, the two interleaved in every repeat."""
    from pipeline.data.landing import _walk_local
    from pipeline.data.sources import is_supported

    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"batch {i:04d}.csv").write_text("text,label\nx,a\n")
    variants = {
        "fsspec find + pathlib checks (before)": fsspec_listing,
        "os.walk (now)": lambda root: [p for p in _walk_local(root) if is_supported(p)],
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        results = []
        for name, listing in variants.items():
            start = time.perf_counter()
            results.append(listing(str(folder)))
            times[name].append(time.perf_counter() - start)
        assert results[0] == results[1], "both listings find the same files"
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ledger_status.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        listings = compare_listings(Path(folder) / "listing", args.files)
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
        f"Listing a folder of {args.files:,} files, the two ways interleaved (median of 5):",
        "",
        "| listing | seconds | vs before |",
        "|---|---|---|",
        *(
            f"| {name} | {seconds:.3f} | {seconds / next(iter(listings.values())):.2f}x |"
            for name, seconds in listings.items()
        ),
        "",
        f"Machine: 2 CPU cores, shared (load average {os.getloadavg()[0]:.1f} at the end), "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
