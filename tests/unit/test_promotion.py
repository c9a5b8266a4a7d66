"""The promotion gate: statistics against known values and every branch of the policy."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score

from pipeline.config import PromotionConfig
from pipeline.evaluation.metrics import classification_metrics
from pipeline.registry.gate import (
    compare_predictions,
    decide_promotion,
    macro_f1_rows,
    mcnemar_test,
    paired_bootstrap,
    split_digest,
)

LABELS = ["billing", "shipping", "technical"]


def make_predictions(rows: int, candidate_accuracy: float, champion_accuracy: float, seed: int = 0):
    """Truth and two models' labels whose accuracies are close to the requested ones."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, rows)

    def noisy(accuracy):
        wrong = rng.random(rows) > accuracy
        return np.where(wrong, (truth + rng.integers(1, 3, rows)) % 3, truth)

    as_names = lambda ids: [LABELS[i] for i in ids]  # noqa: E731
    return as_names(truth), as_names(noisy(candidate_accuracy)), as_names(noisy(champion_accuracy))


def test_vectorised_macro_f1_matches_sklearn_and_the_report_definition():
    rng = np.random.default_rng(1)
    truth, pred = rng.integers(0, 5, (7, 60)), rng.integers(0, 4, (7, 60))
    pred[3] = truth[3]
    ours = macro_f1_rows(truth, pred, 5)
    assert ours.shape == (7,)
    for row in range(7):
        present = sorted(set(truth[row]) | set(pred[row]))
        assert ours[row] == pytest.approx(
            f1_score(truth[row], pred[row], labels=present, average="macro", zero_division=0)
        )
        assert ours[row] == pytest.approx(classification_metrics(truth[row], pred[row], 5)["macro_f1"])


def test_identical_predictions_give_a_zero_width_interval():
    truth, cand, _ = make_predictions(200, 0.8, 0.8)
    result = paired_bootstrap(
        np.array([LABELS.index(x) for x in truth]),
        np.array([LABELS.index(x) for x in cand]),
        np.array([LABELS.index(x) for x in cand]),
        "macro_f1",
        3,
        500,
        0.95,
    )
    assert result["delta"] == result["low"] == result["high"] == 0.0


@pytest.mark.parametrize("metric", ["macro_f1", "accuracy"])
def test_bootstrap_interval_excludes_zero_for_a_clear_gain_and_includes_it_for_noise(metric):
    ids = lambda names: np.array([LABELS.index(x) for x in names])  # noqa: E731
    truth, cand, champ = map(ids, make_predictions(600, 0.95, 0.60))
    clear = paired_bootstrap(truth, cand, champ, metric, 3, 1000, 0.95)
    assert clear["delta"] > 0.25 and clear["low"] > 0.2 and clear["high"] > clear["low"]
    truth, cand, champ = map(ids, make_predictions(150, 0.80, 0.80, seed=3))
    noise = paired_bootstrap(truth, cand, champ, metric, 3, 1000, 0.95)
    assert noise["low"] < 0 < noise["high"]
    assert noise == paired_bootstrap(truth, cand, champ, metric, 3, 1000, 0.95), "seeded: reproducible"


def test_mcnemar_exact_and_chi_square_known_values():
    cand = np.array([True] * 10 + [False] * 2 + [True] * 50)
    champ = np.array([False] * 10 + [True] * 2 + [True] * 50)
    exact = mcnemar_test(cand, champ)
    assert (exact["candidate_only"], exact["champion_only"]) == (10, 2)
    assert exact["method"] == "exact binomial"
    assert exact["p_value"] == pytest.approx(stats.binomtest(10, 12, 0.5).pvalue) == pytest.approx(0.03857, abs=1e-4)
    cand = np.array([True] * 30 + [False] * 10)
    big = mcnemar_test(cand, ~cand)
    assert big["statistic"] == pytest.approx(19**2 / 40) and big["p_value"] == pytest.approx(0.002663, abs=1e-5)
    assert mcnemar_test(cand, cand)["p_value"] == 1.0


def policy(**overrides) -> PromotionConfig:
    return PromotionConfig(**{"bootstrap_samples": 500, **overrides})


def compared(candidate_accuracy, champion_accuracy, rows=400, seed=0, **overrides):
    config = policy(**overrides)
    truth, cand, champ = make_predictions(rows, candidate_accuracy, champion_accuracy, seed)
    comparison = compare_predictions(truth, cand, champ, config, label_names=LABELS)
    comparison["champion"] = {"version": "1"}
    return config, comparison


def test_first_run_becomes_champion_above_the_floor_and_nothing_below_it():
    decision = decide_promotion(policy(min_metric=0.5), {"macro_f1": 0.7, "accuracy": 0.7}, None)
    assert decision["passed"] and decision["become_champion"] and decision["outcome"] == "champion"
    low = decide_promotion(policy(min_metric=0.8), {"macro_f1": 0.7, "accuracy": 0.7}, None)
    assert not low["passed"] and not low["become_champion"] and low["outcome"] == "rejected"
    assert "floor 0.8000" in low["reason"]


def test_better_candidate_is_challenger_and_champion_only_with_auto_promote():
    config, comparison = compared(0.95, 0.7)
    decision = decide_promotion(config, comparison["candidate_metrics"], comparison)
    assert decision["outcome"] == "challenger" and not decision["become_champion"]
    auto = decide_promotion(policy(auto_promote=True), comparison["candidate_metrics"], comparison)
    assert auto["outcome"] == "champion"


def test_floor_applies_even_when_the_candidate_beats_the_champion():
    config, comparison = compared(0.6, 0.4, min_metric=0.9, auto_promote=True)
    decision = decide_promotion(config, comparison["candidate_metrics"], comparison)
    assert decision["outcome"] == "rejected" and "floor" in decision["reason"]


def test_per_class_regression_fails_the_gate_and_names_the_class():
    config = policy(max_class_regression=0.05)
    truth = ["billing"] * 50 + ["shipping"] * 50 + ["technical"] * 50
    champ = list(truth)
    cand = ["billing"] * 50 + ["shipping"] * 50 + ["technical"] * 50
    cand[100:115] = ["billing"] * 15  # technical gets worse
    champ[0:20] = ["shipping"] * 20  # billing was bad, so the average still improves
    comparison = compare_predictions(truth, cand, champ, config, label_names=LABELS)
    comparison["champion"] = {"version": "4"}
    assert comparison["bootstrap"]["delta"] > 0
    decision = decide_promotion(config, comparison["candidate_metrics"], comparison)
    assert decision["outcome"] == "rejected"
    assert "technical" in decision["reason"] and "billing" not in decision["reason"].split("drops beyond")[1]
    assert [r["label"] for r in comparison["per_class"] if r["regressed"]] == ["technical"]
    lenient = decide_promotion(policy(max_class_regression=0.5), comparison["candidate_metrics"], comparison)
    assert lenient["passed"]


def test_min_improvement_is_required():
    config, comparison = compared(0.82, 0.8, min_improvement=0.1)
    decision = decide_promotion(config, comparison["candidate_metrics"], comparison)
    assert decision["outcome"] == "rejected" and "needs at least +0.1000" in decision["reason"]


def test_significance_is_required_only_when_configured():
    config, comparison = compared(0.83, 0.80, rows=150, seed=2, max_class_regression=1.0)
    assert comparison["bootstrap"]["low"] < 0 < comparison["bootstrap"]["delta"] < comparison["bootstrap"]["high"]
    assert decide_promotion(config, comparison["candidate_metrics"], comparison)["passed"]
    strict = policy(require_significance=True, max_class_regression=1.0)
    decision = decide_promotion(strict, comparison["candidate_metrics"], comparison)
    assert not decision["passed"] and "includes 0" in decision["reason"]
    strict_config, strong = compared(0.95, 0.6, require_significance=True)
    assert decide_promotion(strict_config, strong["candidate_metrics"], strong)["passed"]


def test_a_champion_that_could_not_be_rescored_fails_the_gate():
    decision = decide_promotion(
        policy(), {"macro_f1": 0.9}, {"error": "artifacts missing", "champion": {"version": "2"}}
    )
    assert not decision["passed"] and "could not be re-scored: artifacts missing" in decision["reason"]


def test_new_classes_are_reported_and_never_count_as_regressions():
    config = policy()
    truth = ["billing", "shipping", "refunds", "refunds"] * 20
    cand = list(truth)
    champ = ["billing", "shipping", "billing", "shipping"] * 20
    comparison = compare_predictions(
        truth,
        cand,
        champ,
        config,
        champion_confidence=np.full(80, 0.9),
        label_names=["billing", "refunds", "shipping"],
        champion_labels=["billing", "shipping"],
    )
    assert comparison["labels_unknown_to_champion"] == ["refunds"]
    refunds = next(r for r in comparison["per_class"] if r["label"] == "refunds")
    assert refunds["champion_f1"] == 0.0 and refunds["candidate_f1"] == 1.0 and not refunds["regressed"]
    assert comparison["champion_metrics"]["ece"] == pytest.approx(0.4)


def test_split_digest_ignores_row_order_but_not_labels():
    assert split_digest(["a", "b"], ["x", "y"]) == split_digest(["b", "a"], ["y", "x"])
    assert split_digest(["a", "b"], ["x", "y"]) != split_digest(["a", "b"], ["y", "x"])
