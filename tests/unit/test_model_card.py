"""The comparison report and the model card, rendered from real gate outcomes."""

import numpy as np

from pipeline.config import PromotionConfig
from pipeline.registry.gate import compare_predictions, decide_promotion
from pipeline.registry.model_card import DESCRIPTION_LIMIT, fit_description, render_comparison, render_model_card

POLICY = PromotionConfig(bootstrap_samples=200)


def outcome_for(labels: list[str], rows: int = 300, champion: bool = True, error: str | None = None) -> dict:
    rng = np.random.default_rng(0)
    truth = [labels[i] for i in rng.integers(0, len(labels), rows)]
    cand = [t if rng.random() < 0.9 else labels[0] for t in truth]
    champ = [t if rng.random() < 0.7 else labels[-1] for t in truth]
    comparison = None
    if champion:
        comparison = (
            {"error": error}
            if error
            else compare_predictions(truth, cand, champ, POLICY, label_names=labels, champion_labels=labels[:-1])
        )
        comparison["champion"] = {"version": "3"}
    gate = decide_promotion(POLICY, {"macro_f1": 0.9, "accuracy": 0.9}, comparison)
    return {
        "model_name": "clf",
        "primary_metric": "macro_f1",
        "candidate": {"run_id": "run-new"},
        "champion": {
            "version": "3",
            "run_id": "run-old",
            "resolved_from": "models:/clf@champion",
            "resolved_at": "2026-01-01T00:00:00+00:00",
        }
        if champion
        else None,
        "comparison": comparison,
        "gate": gate,
        "test_rows": rows,
        "test_split_digest": "abc",
        "compared_at": "2026-01-01T00:00:01+00:00",
        "policy": POLICY.model_dump(
            include={
                "min_metric",
                "min_improvement",
                "max_class_regression",
                "require_significance",
                "significance_level",
                "auto_promote",
            }
        ),
    }


LINEAGE = {
    "source_run": "run-new",
    "run_name": "train-x",
    "experiment_id": "1",
    "snapshot_id": "snap1",
    "snapshot_sha256": "c0ffee",
    "manifest_sha256": "beef",
    "snapshot_rows": 1000,
    "code_version": "git:123",
    "base_model": "packaged:all-minilm-l6-v2",
    "label_map": {},
    "max_length": 128,
    "method": "full",
    "device": "cpu",
    "optimizer_steps": 40,
    "train_seconds": 12.5,
    "learning_rate": "5e-05",
    "trained_at": "2026-01-01T00:00:00+00:00",
}


def evaluation_for(labels: list[str]) -> dict:
    return {
        "metrics": {"accuracy": 0.9, "macro_f1": 0.9, "ece": 0.12, "mean_confidence": 0.7, "test_rows": 300},
        "per_class": [
            {"label": x, "precision": 0.9, "recall": 0.9, "f1": 0.95 - i / 1000, "support": 4 + i}
            for i, x in enumerate(labels)
        ],
        "slices": [{"slice": "length", "value": "0-31", "count": 300, "accuracy": 0.9, "macro_f1": 0.9}],
    }


def test_comparison_report_reads_as_a_person_needs_it():
    report = render_comparison(outcome_for(["billing", "refunds", "shipping"]))
    assert report.startswith("# Comparison with the champion: clf")
    assert "Champion: **version 3**" in report and "re-scored now; its logged numbers are not used" in report
    assert "| macro-F1 (primary) |" in report and "bootstrap interval" in report and "McNemar" in report
    assert "Classes the champion was never trained on: shipping." in report
    assert "## Gate checks" in report and "## Per-class F1 on the same rows" in report


def test_first_version_and_unscorable_champion_reports():
    first = render_comparison(outcome_for(["a", "b"], champion=False))
    assert "No champion yet" in first and "PASSED → champion" in first
    broken = render_comparison(outcome_for(["a", "b"], error="OSError: artifacts gone"))
    assert "could not be re-scored: OSError: artifacts gone" in broken and "FAILED → no alias" in broken


def test_model_card_has_lineage_metrics_comparison_and_limitations():
    labels = ["billing", "refunds", "shipping"]
    lineage = {**LINEAGE, "label_map": {x: i for i, x in enumerate(labels)}}
    card = render_model_card("clf", "4", lineage, evaluation_for(labels), outcome_for(labels), ["challenger"])
    for expected in (
        "# Model card: clf version 4",
        "Status: **challenger**",
        "| data snapshot | `snap1`, 1000 rows |",
        "`git:123`",
        "| manifest sha256 | `beef` |",
        "## Per class",
        "## Slices",
        "Against champion version 3",
        "## Limitations",
        "underconfident",
        "Fewer than 10 test examples",
    ):
        assert expected in card, expected


def test_description_fits_the_registry_limit_for_many_classes():
    labels = [f"intent_{i:02d}_with_a_long_name" for i in range(77)]
    lineage = {**LINEAGE, "label_map": {x: i for i, x in enumerate(labels)}}
    outcome = outcome_for(labels, rows=1500)
    full = render_model_card("clf", "9", lineage, evaluation_for(labels), outcome, [])
    compact = render_model_card("clf", "9", lineage, evaluation_for(labels), outcome, [], compact=True)
    assert len(full) > DESCRIPTION_LIMIT
    described = fit_description(full, compact)
    assert len(described) <= DESCRIPTION_LIMIT and described.startswith("# Model card: clf version 9")
    assert described == compact, "the compact card fits without cutting"
    assert "## Lineage" in described and "## Limitations" in described and "65 more" in described
