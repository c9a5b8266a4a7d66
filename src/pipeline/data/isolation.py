"""Per-file isolation at commit: a file that would break a snapshot rule is refused alone.

The snapshot of a batch is planned once; only when it breaks a rule (too many conflicting labels, a
class-balance rule of the snapshot suite) are files taken out, one at a time, the one that causes the
failure first, until the rest passes. The refused files go to quarantine with their own report; the
others commit. Conflicts within the allowed share are dropped by the policy and counted, as before.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

logger = logging.getLogger(__name__)


def conflict_culprit(conflicts, candidates: list) -> object:
    """The candidate file (``.uri``) holding the most conflicting rows (the later one on a tie); the last
    one when none does."""
    counts = Counter(conflicts["source"].astype(str)) if len(conflicts) else Counter()
    ranked = sorted(reversed(candidates), key=lambda f: counts.get(f.uri, 0), reverse=True)  # ties: the latest
    return ranked[0] if counts.get(ranked[0].uri, 0) else candidates[-1]


def write_isolating_conflicts(
    write: Callable[[list], object], files: list, report_for: Callable
) -> tuple[object | None, list[tuple[object, dict]]]:
    """``write(files) -> Snapshot`` retried without the file that makes it raise ConflictError.

    Returns (snapshot or None when no file is left, [(refused file, quarantine report)]). ``report_for``
    turns a ConflictError into the path of a CSV listing the conflicting rows.
    """
    from pipeline.data.deduplication import ConflictError

    remaining, refused = list(files), []
    while remaining:
        try:
            return write(remaining), refused
        except ConflictError as exc:
            culprit = conflict_culprit(exc.conflicts, remaining)
            mine = int((exc.conflicts["source"].astype(str) == culprit.uri).sum()) if len(exc.conflicts) else 0
            report = {
                "rule": "conflicting_labels",
                "report_csv": report_for(exc),
                "message": f"{mine} of its {culprit.rows} rows share a normalised text with a different label "
                f"in the snapshot or the batch, beyond data.max_conflict_share "
                f"(batch: {exc}). The other files of the batch were committed without it; fix the "
                "labels (the CSV lists every conflicting row) and land the file again.",
            }
            logger.warning("refusing %s alone: %s", culprit.uri, report["message"])
            refused.append((culprit, report))
            remaining.remove(culprit)
    return None, refused


def part_label_counts(path: Path) -> Counter:
    """Label counts of one staged part (missing labels left out)."""
    import pyarrow.compute as pc

    counts = pc.value_counts(pq.read_table(path, columns=["label"]).column("label")).to_pylist()
    return Counter({item["values"]: item["counts"] for item in counts if item["values"] is not None})


def isolate_class_balance(
    base: dict[str, int], files: list, judge: Callable[[dict[str, int]], str | None]
) -> list[tuple[object, dict]]:
    """Files whose labels make the snapshot break a class-balance rule, refused one at a time.

    ``judge(label counts) -> failed rule message or None`` runs on the whole batch first; only when it
    fails are files judged cumulatively, in order, and each one that turns a passing snapshot into a
    failing one is refused (a failure that no single file causes refuses nothing: it is reported by
    the data gate of a run). Returns [(refused file, quarantine report)].
    """
    counts = {f.uri: part_label_counts(f.path) for f in files}
    total = Counter(base)
    for file in files:
        total.update(counts[file.uri])
    if judge(dict(total)) is None:
        return []
    refused, running = [], Counter(base)
    before = judge(dict(running)) if running else None
    for file in files:
        trial = running + counts[file.uri]
        failure = judge(dict(trial))
        if failure is not None and before is None and running:
            refused.append(
                (
                    file,
                    {
                        "rule": failure.split(":", 1)[0],
                        "message": f"with this file the snapshot would "
                        f"break the snapshot suite: {failure}. The other files were committed without it.",
                    },
                )
            )
            continue
        running, before = trial, failure
    return refused
