"""The promotion gate: compare a candidate with the champion on the same test split, then decide.

Pure functions over arrays of class ids (no MLflow, no models): the caller re-scores the champion and
passes both models' predictions on the *same* rows. Statistics:

- the difference in the primary metric (candidate minus champion) with a paired bootstrap confidence
  interval (``scipy.stats.bootstrap``, rows resampled jointly for both models, percentile method,
  two-sided at ``1 - significance_level``);
- McNemar's test on the rows exactly one model gets right (exact binomial test below 25 discordant
  rows, chi-square with continuity correction above);
- per-class F1 of both models, a class "regresses" when its F1 drops by more than the allowed amount.

The policy (``PromotionConfig``) is documented in ``decide_promotion`` and in the README.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import stats

from pipeline.evaluation.metrics import (
    classification_metrics,
    expected_calibration_error_from_confidence,
    per_class_table,
)
from pipeline.registry.naming import label_list_tag

EXACT_MCNEMAR_BELOW = 25


def _counts(
    y: np.ndarray, num_labels: int, rows: int, offsets: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    keys = (y + offsets).ravel() if mask is None else (y + offsets)[mask]
    return np.bincount(keys, minlength=rows * num_labels).reshape(rows, num_labels)


def macro_f1_rows(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    """Macro-F1 along the last axis, for any number of leading (resample) axes.

    Same definition as ``evaluation.classification_metrics``: the average over classes that occur in
    ``y_true`` or ``y_pred`` of that resample (sklearn's ``labels=present, zero_division=0``).
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    lead = y_true.shape[:-1]
    y_true, y_pred = y_true.reshape(-1, y_true.shape[-1]), y_pred.reshape(-1, y_pred.shape[-1])
    rows = y_true.shape[0]
    offsets = (np.arange(rows, dtype=np.int64) * num_labels)[:, None]
    true_counts = _counts(y_true, num_labels, rows, offsets)
    pred_counts = _counts(y_pred, num_labels, rows, offsets)
    hits = _counts(y_true, num_labels, rows, offsets, mask=y_true == y_pred)
    denominator = true_counts + pred_counts
    present = denominator > 0
    f1 = np.divide(2.0 * hits, denominator, out=np.zeros(denominator.shape), where=present)
    return (f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)).reshape(lead)


def accuracy_rows(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int) -> np.ndarray:
    return (np.asarray(y_true) == np.asarray(y_pred)).mean(axis=-1)


METRICS = {"macro_f1": macro_f1_rows, "accuracy": accuracy_rows}


def paired_bootstrap(
    y_true: np.ndarray,
    pred_candidate: np.ndarray,
    pred_champion: np.ndarray,
    metric: str,
    num_labels: int,
    samples: int,
    confidence: float,
    seed: int = 0,
) -> dict:
    """Candidate-minus-champion difference in ``metric`` and its paired bootstrap confidence interval.

    Identical predictions give a zero difference and a zero-width interval (no resampling needed).
    """
    score = METRICS[metric]
    y_true, a, b = (np.asarray(x, dtype=np.int64) for x in (y_true, pred_candidate, pred_champion))
    delta = float(score(y_true, a, num_labels) - score(y_true, b, num_labels))
    if np.array_equal(a, b) or len(y_true) < 2:
        return {"delta": delta, "low": delta, "high": delta, "confidence": confidence, "samples": 0}

    def difference(truth, cand, champ, axis=-1):
        return score(truth, cand, num_labels) - score(truth, champ, num_labels)

    result = stats.bootstrap(
        (y_true, a, b),
        difference,
        paired=True,
        vectorized=True,
        n_resamples=samples,
        confidence_level=confidence,
        method="percentile",
        batch=250,
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return {"delta": delta, "low": float(low), "high": float(high), "confidence": confidence, "samples": samples}


def mcnemar_test(correct_candidate: np.ndarray, correct_champion: np.ndarray) -> dict:
    """McNemar's test on paired correctness. ``candidate_only``: rows only the candidate gets right."""
    a, b = np.asarray(correct_candidate, dtype=bool), np.asarray(correct_champion, dtype=bool)
    candidate_only, champion_only = int((a & ~b).sum()), int((~a & b).sum())
    discordant = candidate_only + champion_only
    if discordant == 0:
        statistic, p_value, method = 0.0, 1.0, "no discordant rows"
    elif discordant < EXACT_MCNEMAR_BELOW:
        statistic = float(min(candidate_only, champion_only))
        p_value, method = float(stats.binomtest(candidate_only, discordant, 0.5).pvalue), "exact binomial"
    else:
        statistic = (abs(candidate_only - champion_only) - 1) ** 2 / discordant
        p_value, method = float(stats.chi2.sf(statistic, df=1)), "chi-square, continuity-corrected"
    return {
        "candidate_only": candidate_only,
        "champion_only": champion_only,
        "statistic": float(statistic),
        "p_value": p_value,
        "method": method,
    }


def per_class_changes(
    y_true: np.ndarray,
    pred_candidate: np.ndarray,
    pred_champion: np.ndarray,
    label_names: list[str],
    max_regression: float,
) -> list[dict]:
    """Both models' F1 per class; ``regressed`` when the candidate's F1 is lower by more than ``max_regression``."""
    new = per_class_table(y_true, pred_candidate, label_names)
    old = per_class_table(y_true, pred_champion, label_names)
    rows = []
    for label, support, f1_new, f1_old in zip(label_names, new["support"], new["f1"], old["f1"]):
        change = float(f1_new - f1_old)
        rows.append(
            {
                "label": label,
                "support": int(support),
                "champion_f1": float(f1_old),
                "candidate_f1": float(f1_new),
                "change": change,
                "regressed": bool(-change > max_regression + 1e-12),
            }
        )
    return rows


def split_digest(texts, labels) -> str:
    """Order-independent digest of the (text, label) rows, so two reports can show they used one split."""
    rows = sorted(f"{t}\t{y}" for t, y in zip(texts, labels))
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()[:16]


def compare_predictions(
    y_true: list[str],
    pred_candidate: list[str],
    pred_champion: list[str],
    policy,
    champion_confidence: np.ndarray | None = None,
    label_names: list[str] | None = None,
    champion_labels: list[str] | None = None,
    candidate_confidence: np.ndarray | None = None,
    seed: int = 0,
) -> dict:
    """Every comparison statistic for two models' labels on the same rows (labels as strings).

    ``label_names``: the candidate's classes; labels only the champion or the test split know are
    appended. ``champion_labels``: the classes the champion was trained on (to report new classes).
    ``*_confidence``: each model's score for its label, for the calibration error of both. ``policy`` is a
    ``PromotionConfig`` (primary metric, level, resamples, class tolerance).
    """
    names = list(label_names or [])
    for label in [*y_true, *pred_candidate, *pred_champion]:
        if label not in names:
            names.append(label)
    index = {label: i for i, label in enumerate(names)}
    truth, cand, champ = (
        np.array([index[x] for x in labels], dtype=np.int64) for labels in (y_true, pred_candidate, pred_champion)
    )
    k = len(names)
    candidate_metrics, champion_metrics = (
        classification_metrics(truth, cand, k),
        classification_metrics(truth, champ, k),
    )
    for metrics, confidence, pred in (
        (candidate_metrics, candidate_confidence, cand),
        (champion_metrics, champion_confidence, champ),
    ):
        if confidence is not None:
            metrics["ece"] = expected_calibration_error_from_confidence(np.asarray(confidence), truth == pred)[0]
    bootstrap = paired_bootstrap(
        truth, cand, champ, policy.primary_metric, k, policy.bootstrap_samples, 1.0 - policy.significance_level, seed
    )
    return {
        "primary_metric": policy.primary_metric,
        "test_rows": int(len(truth)),
        "candidate_metrics": candidate_metrics,
        "champion_metrics": champion_metrics,
        "bootstrap": bootstrap,
        "mcnemar": mcnemar_test(truth == cand, truth == champ),
        "per_class": per_class_changes(truth, cand, champ, names, policy.max_class_regression),
        "agreement": float((cand == champ).mean()) if len(cand) else 1.0,
        "labels_unknown_to_champion": (
            [n for n in names if n not in set(champion_labels)] if champion_labels is not None else []
        ),
    }


def _check(name: str, passed: bool, detail: str, required: bool = True) -> dict:
    return {"name": name, "passed": bool(passed), "required": required, "detail": detail}


def decide_promotion(policy, candidate_metrics: dict, comparison: dict | None) -> dict:
    """The gate's decision for a candidate.

    Policy:
    - ``floor``: the primary metric must be at least ``min_metric`` (always, the first version included);
    - no champion (``comparison`` is None): the candidate passes on the floor alone and becomes champion;
    - a champion was re-scored: the candidate passes when the difference is at least ``min_improvement``,
      no class F1 drops by more than ``max_class_regression``, and, if ``require_significance``, the
      bootstrap interval lies above zero and McNemar's p-value is below ``significance_level`` with the
      candidate right more often on the discordant rows. It becomes champion only with ``auto_promote``;
    - the champion could not be re-scored (``comparison["error"]``): the candidate fails.

    Returns ``passed``, ``become_champion``, ``outcome`` (champion/challenger/rejected), ``reason`` and
    every ``checks`` entry (name, passed, required, detail).
    """
    metric = policy.primary_metric
    value = float(candidate_metrics[metric])
    checks = [_check("floor", value >= policy.min_metric, f"{metric} {value:.4f} vs floor {policy.min_metric:.4f}")]
    if comparison is None:
        checks.append(_check("first_run", True, "no champion yet: the first version above the floor becomes champion"))
    elif comparison.get("error"):
        checks.append(_check("champion_rescored", False, f"champion could not be re-scored: {comparison['error']}"))
    else:
        checks += _comparison_checks(policy, comparison)
    passed = all(c["passed"] for c in checks if c["required"])
    become_champion = passed and (comparison is None or policy.auto_promote)
    outcome = "champion" if become_champion else "challenger" if passed else "rejected"
    failing = [c["detail"] for c in checks if c["required"] and not c["passed"]]
    reason = (
        "passed: " + "; ".join(c["detail"] for c in checks if c["required"])
        if passed
        else "failed: " + "; ".join(failing)
    )
    return {
        "passed": passed,
        "become_champion": become_champion,
        "outcome": outcome,
        "reason": reason,
        "checks": checks,
    }


def _comparison_checks(policy, comparison: dict) -> list[dict]:
    metric, boot, test = policy.primary_metric, comparison["bootstrap"], comparison["mcnemar"]
    version = comparison.get("champion", {}).get("version", "?")
    interval = f"{boot['confidence']:.0%} CI {boot['low']:+.4f} .. {boot['high']:+.4f}"
    improvement = _check(
        "improvement",
        boot["delta"] >= policy.min_improvement - 1e-12,
        f"{metric} {boot['delta']:+.4f} vs champion v{version} ({interval}), "
        f"needs at least {policy.min_improvement:+.4f}",
    )
    regressed = [r for r in comparison["per_class"] if -r["change"] > policy.max_class_regression + 1e-12]
    classes = _check(
        "class_regression",
        not regressed,
        (
            f"no class F1 drops by more than {policy.max_class_regression:.3f}"
            if not regressed
            else "class F1 drops beyond "
            + f"{policy.max_class_regression:.3f}: "
            + ", ".join(f"{r['label']} {r['change']:+.3f}" for r in regressed)
        ),
    )
    significant = (
        boot["low"] > 0
        and test["p_value"] < policy.significance_level
        and test["candidate_only"] > test["champion_only"]
    )
    significance = _check(
        "significance",
        significant,
        f"{interval} {'excludes' if boot['low'] > 0 else 'includes'} 0; McNemar p={test['p_value']:.4g} "
        f"({test['candidate_only']} vs {test['champion_only']} discordant rows, alpha "
        f"{policy.significance_level})",
        required=policy.require_significance,
    )
    return [improvement, classes, significance]


def outcome_tags(outcome: dict) -> dict[str, str]:
    """The gate outcome as flat string tags (for the run and the registered version)."""
    gate, comparison, champion = outcome["gate"], outcome["comparison"], outcome["champion"]
    tags = {
        "gate_passed": str(gate["passed"]),
        "gate_outcome": gate["outcome"],
        "gate_reason": gate["reason"][:5000],
        "compared_with": f"version {champion['version']}" if champion else "none (first version)",
        "test_split_digest": outcome["test_split_digest"],
    }
    if comparison and not comparison.get("error"):
        boot, metric = comparison["bootstrap"], outcome["primary_metric"]
        tags[f"delta_{metric}"] = f"{boot['delta']:+.4f}"
        tags[f"delta_{metric}_ci"] = f"[{boot['low']:+.4f}, {boot['high']:+.4f}] at {boot['confidence']:.0%}"
        tags["mcnemar_p_value"] = f"{comparison['mcnemar']['p_value']:.4g}"
        tags["regressed_classes"] = label_list_tag([r["label"] for r in comparison["per_class"] if r["regressed"]])
    return tags
