"""MLflow keys and tag values derived from user labels: labels are data, so they go in values, not keys.

MLflow accepts metric names of letters, digits, ``_ - . / : space`` that do not resolve to another path
(``a/../b``), keys of at most 250 characters, run tags of at most 8,000 characters and version tags of
at most 100,000. A label such as ``C++``, ``billing & payments`` or a 200-character sentence breaks the
first rule, and 2,000 classes break the others. These helpers keep every key valid and every value
within its limit; the full per-class report always goes to an artifact.
"""

from __future__ import annotations

import hashlib
import json
import re

SAFE_LABEL = re.compile(r"^[A-Za-z0-9_\-]{1,60}$")
MAX_CLASS_METRICS = 200
RUN_TAG_LIMIT = 5000
VERSION_TAG_LIMIT = 50_000
MAX_LISTED = 100


def label_slug(label: str) -> str:
    """The label itself when it is a short name of letters, digits, ``_`` and ``-``; else a readable part
    plus a hash of the label, so two labels never share a key (``C++`` -> ``C-6b1e0c93``)."""
    if SAFE_LABEL.match(label):
        return label
    readable = re.sub(r"[^A-Za-z0-9_\-]+", "_", label).strip("_")[:40] or "label"
    return f"{readable}-{hashlib.sha256(label.encode('utf-8')).hexdigest()[:8]}"


def per_class_metrics(
    prefix: str, per_class: list[dict], column: str = "f1", max_classes: int = MAX_CLASS_METRICS
) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics ``{prefix}{slug}: value``, ``{metric name: label}``) for at most ``max_classes`` classes.

    Above ``max_classes`` no per-class metric is logged (the per-class table is an artifact): thousands
    of metric series help nobody in the MLflow UI. Returns ({}, {}) then.
    """
    if len(per_class) > max_classes:
        return {}, {}
    metrics, names = {}, {}
    for row in per_class:
        key = f"{prefix}{label_slug(str(row['label']))}"
        metrics[key] = row[column]
        names[key] = str(row["label"])
    return metrics, names


def fit_tag(value: str, limit: int = RUN_TAG_LIMIT, where: str = "the run's artifacts") -> str:
    """``value`` when it fits ``limit`` characters, else its start with a note of where the rest is."""
    if len(value) <= limit:
        return value
    note = f" … (cut at {limit} characters; in full: {where})"
    return value[: limit - len(note)] + note


def label_list_tag(labels: list[str], limit: int = 1000, where: str = "registry/comparison.json") -> str:
    """A comma-separated list of labels for a tag, cut between labels with a count of those left out."""
    out, used = [], 0
    for position, label in enumerate(labels):
        if used + len(label) + 2 > limit - 60:
            return ", ".join(out) + f" … (+{len(labels) - position} more; see {where})"
        out.append(label)
        used += len(label) + 2
    return ", ".join(out) or "none"


def compact_outcome_json(outcome: dict, limit: int = VERSION_TAG_LIMIT) -> str:
    """The gate outcome as JSON for a version tag: the per-class table is left out (it is in
    ``registry/comparison.json``) and the regressed classes kept, cut to fit ``limit``."""
    compact = {k: v for k, v in outcome.items() if k != "report"}
    comparison = compact.get("comparison")
    if isinstance(comparison, dict) and "per_class" in comparison:
        per_class = comparison["per_class"]
        regressed = [r["label"] for r in per_class if r.get("regressed")]
        compact["comparison"] = {
            **{k: v for k, v in comparison.items() if k != "per_class"},
            "classes": len(per_class),
            "regressed_count": len(regressed),
            "regressed_classes": regressed[:MAX_LISTED],
            "per_class": "registry/comparison.json in the run",
        }
    text = json.dumps(_shorten(compact), default=str)
    return (
        text
        if len(text) <= limit
        else json.dumps(
            {"comparison": "registry/comparison.json in the run", "gate": _shorten(compact.get("gate"), 500)},
            default=str,
        )
    )


def _shorten(value, max_chars: int = 2000):
    """Strings cut to ``max_chars`` (a gate reason may list hundreds of labels), lists to ``MAX_LISTED``."""
    if isinstance(value, str):
        return fit_tag(value, max_chars, "registry/comparison.json in the run")
    if isinstance(value, dict):
        return {k: _shorten(v, max_chars) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shorten(v, max_chars) for v in value[:MAX_LISTED]]
    return value
