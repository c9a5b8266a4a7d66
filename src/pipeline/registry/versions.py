"""Helpers of the compare and register steps: what goes into the run and onto the registered version."""

from __future__ import annotations

import json

from pipeline.registry import gate as promotion
from pipeline.registry import tracking as registry
from pipeline.registry.naming import VERSION_TAG_LIMIT, compact_outcome_json
from pipeline.results import Comparison, Evaluation

LINEAGE_TAGS = ("source_run", "snapshot_id", "snapshot_sha256", "manifest_sha256", "code_version", "base_model")


def log_comparison(client, run_id: str, outcome: dict, report: str) -> None:
    """The gate outcome on the run: ``registry/comparison.{md,json}``, tags, and comparison metrics."""
    comparison, metric = outcome["comparison"], outcome["primary_metric"]
    client.log_text(run_id, report, "registry/comparison.md")
    client.log_text(run_id, json.dumps(outcome, indent=2, default=str), "registry/comparison.json")
    for key, value in promotion.outcome_tags(outcome).items():
        client.set_tag(run_id, key, value)
    if comparison and not comparison.get("error"):
        boot = comparison["bootstrap"]
        registry.log_metrics(
            client,
            run_id,
            {
                f"champion_{metric}": comparison["champion_metrics"][metric],
                f"delta_{metric}": boot["delta"],
                f"delta_{metric}_ci_low": boot["low"],
                f"delta_{metric}_ci_high": boot["high"],
                "mcnemar_p_value": comparison["mcnemar"]["p_value"],
                "champion_agreement": comparison["agreement"],
            },
        )


def uncompared_outcome(policy, name: str, client, run_id: str, evaluation: Evaluation) -> Comparison:
    """Gate outcome for a caller that skipped ``compare_with_champion``: the first-run policy when there
    is no champion, else a failed gate (a version is never promoted without being compared)."""
    champion = registry.alias_version(client, name, registry.CHAMPION)
    comparison = (
        None if champion is None else {"error": "not compared with the champion (the compare step was skipped)"}
    )
    return Comparison(
        model_name=name,
        primary_metric=policy.primary_metric,
        candidate={"run_id": run_id},
        champion=None
        if champion is None
        else {
            "version": champion,
            "resolved_from": f"models:/{name}@champion",
            "resolved_at": "n/a",
            "uri": f"models:/{name}/{champion}",
        },
        comparison=comparison,
        gate=promotion.decide_promotion(policy, evaluation.metrics, comparison),
        test_rows=evaluation.metrics.get("test_rows"),
        test_split_digest="n/a",
        compared_at="n/a",
        policy=policy.model_dump(),
    )


def version_tags(lineage: dict, metrics: dict, outcome: dict) -> dict[str, str]:
    """Lineage, gate outcome and the full comparison (JSON) as version tags. The test metrics live on the
    logged model (``tracking.log_model_metrics``), not in tags; ``metrics`` is kept for callers."""
    return {
        **{k: str(lineage[k]) for k in LINEAGE_TAGS if lineage.get(k) is not None},
        "label_map": label_map_tag(lineage["label_map"]),
        **promotion.outcome_tags(outcome),
        "comparison": compact_outcome_json(outcome),
    }


def label_map_tag(label_map: dict) -> str:
    """The label map as JSON when it fits a version tag, else a pointer to ``registry/label_map.json``."""
    full = json.dumps(label_map, sort_keys=True)
    if len(full) <= VERSION_TAG_LIMIT:
        return full
    return f"{len(label_map)} labels: see registry/label_map.json in the run (or id2label in the model's config.json)"


def find_version_of_run(client, name: str, run_id: str):
    """The version already registered from ``run_id`` (a retried register task), or None."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except MlflowException:
        return None
    return found[0] if found else None
