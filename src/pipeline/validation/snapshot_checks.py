"""Snapshot-level checks run before commit: the class-balance suite on the snapshot a batch would make.

A file that would make the snapshot break the snapshot suite (a new class with too few examples, one
class taking over) is refused alone; the rest of the batch commits. The first snapshot is never judged
per file: more data, not a refusal, fixes a snapshot that holds one class so far.
"""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.config import PipelineConfig, ValidationConfig
from pipeline.data.isolation import isolate_class_balance
from pipeline.validation.contract import load_suite, run_contract, suite_parameters
from pipeline.validation.results import ContractResult

logger = logging.getLogger(__name__)


def validate_label_counts(counts: dict[str, int], config: ValidationConfig) -> ContractResult:
    """The snapshot suite on label counts alone (what ``validate_snapshot`` judges, without the rows)."""
    total = max(sum(counts.values()), 1)
    frame = pd.DataFrame(
        {"label": list(counts), "count": list(counts.values()), "share": [c / total for c in counts.values()]}
    )
    result = run_contract(
        frame, load_suite([config.snapshot_suite]), suite_parameters(config, None, None, None), config.severity
    )
    result.rows = total
    return result


def class_balance_failure(counts: dict[str, int], config: ValidationConfig) -> str | None:
    """``rule: observed`` of the first failed snapshot-suite check on these counts, or None."""
    result = validate_label_counts(counts, config)
    if result.success:
        return None
    first = result.failures[0]
    return f"{first['rule']}: observed {first['observed']}"


def refuse_class_breakers(config: PipelineConfig, batch, head, rejected: dict[str, dict]) -> dict[str, dict]:
    """{uri: quarantine report} for files of ``batch`` (not already ``rejected``) that alone make the
    snapshot break the snapshot suite."""
    files = [f for f in batch.files if f.uri not in rejected]
    if not files:
        return {}
    base = dict(head.manifest.label_counts) if head is not None else {}
    refused = isolate_class_balance(base, files, lambda counts: class_balance_failure(counts, config.validation))
    return {file.uri: report for file, report in refused}


def label_set_notes(config: PipelineConfig, head) -> list[str]:
    """What a person should know about the label set after an ingest (empty when nothing)."""
    if head is None or config.validation.allowed_labels or len(head.manifest.label_counts) >= 2:
        return []
    labels = ", ".join(map(repr, head.manifest.label_counts)) or "none"
    return [
        f"the snapshot holds one class so far ({labels}): the allowed labels are not fixed from it, and a run "
        "would stop at the data gate. Configure validation.allowed_labels, or land a file with more classes."
    ]
