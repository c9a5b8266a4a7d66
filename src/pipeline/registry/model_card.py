"""Markdown for people: the comparison report and the model card (lineage, metrics, comparison).

Pure string building over the dicts the steps produce. The card is the version's description in the
registry, where SQL stores cap descriptions at 5,000 characters: ``fit_description`` drops the long
tables (the full card is an artifact of the run) rather than cutting text mid-way.
"""

from __future__ import annotations

import json

from pipeline.markdown import markdown_table

DESCRIPTION_LIMIT = 5000
METRIC_NAMES = {"macro_f1": "macro-F1", "accuracy": "accuracy", "ece": "ECE (lower is better)"}
SMALL_SUPPORT = 10
SHORT_LIST = 12


def _num(value, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def gate_headline(gate: dict) -> str:
    verdict = {"champion": "PASSED → champion", "challenger": "PASSED → challenger", "rejected": "FAILED → no alias"}[
        gate["outcome"]
    ]
    return f"**Gate: {verdict}.** {gate['reason']}"


def policy_line(policy: dict) -> str:
    return (
        f"Policy: floor {policy['min_metric']}, min improvement {policy['min_improvement']:+}, "
        f"max class F1 drop {policy['max_class_regression']}, significance "
        f"{'required' if policy['require_significance'] else 'reported, not required'} (alpha "
        f"{policy['significance_level']}), auto-promote {'on' if policy['auto_promote'] else 'off'}."
    )


def render_comparison(outcome: dict) -> str:
    """The comparison report: candidate vs the live champion on the same test split, and the gate."""
    metric, champion, comparison = outcome["primary_metric"], outcome.get("champion"), outcome.get("comparison")
    lines = [f"# Comparison with the champion: {outcome['model_name']}", ""]
    split = (
        f"Test split: {outcome['test_rows']} rows (digest `{outcome['test_split_digest']}`), this run's frozen "
        f"test split; both models scored on it at {outcome['compared_at']}."
    )
    if champion is None:
        lines += [
            "No champion yet: this is the first version of the model. The first version at or above the "
            "floor becomes champion.",
            "",
            split,
            "",
            gate_headline(outcome["gate"]),
            "",
            policy_line(outcome["policy"]),
            "",
        ]
        return "\n".join(lines)
    lines += [
        f"Candidate: run `{outcome['candidate']['run_id']}`. Champion: **version {champion['version']}** "
        f"(run `{champion.get('run_id') or '?'}`), resolved from `{champion['resolved_from']}` at "
        f"{champion['resolved_at']} and re-scored now; its logged numbers are not used.",
        "",
        split,
        "",
        gate_headline(outcome["gate"]),
        "",
    ]
    if comparison is None or comparison.get("error"):
        lines += [f"The champion could not be re-scored: {comparison.get('error') if comparison else 'unknown'}", ""]
        return "\n".join(lines + [policy_line(outcome["policy"]), ""])
    lines += _comparison_body(metric, champion["version"], comparison)
    lines += [
        "## Gate checks",
        markdown_table(
            [
                [c["name"], "yes" if c["required"] else "no", "pass" if c["passed"] else "FAIL", c["detail"]]
                for c in outcome["gate"]["checks"]
            ],
            ["check", "required", "result", "detail"],
        ),
        policy_line(outcome["policy"]),
        "",
    ]
    lines += ["## Per-class F1 on the same rows", _per_classmarkdown_table(comparison["per_class"]), ""]
    return "\n".join(lines)


def _comparison_body(metric: str, version: str, comparison: dict) -> list[str]:
    cand, champ = comparison["candidate_metrics"], comparison["champion_metrics"]
    rows = []
    for key in ("macro_f1", "accuracy", "ece"):
        if key in cand and key in champ:
            label = METRIC_NAMES[key] + (" (primary)" if key == metric else "")
            rows.append([label, _num(champ[key]), _num(cand[key]), _num(cand[key] - champ[key], signed=True)])
    boot, test = comparison["bootstrap"], comparison["mcnemar"]
    verdict = (
        "excludes 0: the change is significant"
        if boot["low"] > 0 or boot["high"] < 0
        else "includes 0: not significant"
    )
    resampling = (
        f"{boot['samples']} paired resamples, percentile"
        if boot["samples"]
        else "identical predictions, no resampling needed"
    )
    lines = [
        markdown_table(rows, ["metric", f"champion v{version}", "candidate", "change"]),
        f"- **{METRIC_NAMES[metric]} change {_num(boot['delta'], signed=True)}**, {boot['confidence']:.0%} "
        f"bootstrap interval [{_num(boot['low'], signed=True)}, {_num(boot['high'], signed=True)}] "
        f"({resampling}): {verdict}.",
        (
            f"- McNemar ({test['method']}): only the candidate is right on {test['candidate_only']} rows, only the "
            f"champion on {test['champion_only']}; p = {test['p_value']:.4g}."
            if test["candidate_only"] + test["champion_only"]
            else "- McNemar: no row where only one of the two models is right; p = 1."
        ),
        f"- The two models give the same label on {comparison['agreement']:.1%} of the rows.",
    ]
    if comparison.get("labels_unknown_to_champion"):
        lines.append(
            f"- Classes the champion was never trained on: {', '.join(comparison['labels_unknown_to_champion'])}."
        )
    regressed = [r for r in comparison["per_class"] if r["regressed"]]
    lines.append(
        "- Classes whose F1 dropped beyond the allowed amount: "
        + (", ".join(f"{r['label']} ({r['change']:+.3f})" for r in regressed) if regressed else "none")
        + "."
    )
    return lines + [""]


def _per_classmarkdown_table(per_class: list[dict]) -> str:
    ordered = sorted(per_class, key=lambda r: r["change"])
    return markdown_table(
        [
            [
                r["label"],
                r["support"],
                _num(r["champion_f1"], 3),
                _num(r["candidate_f1"], 3),
                _num(r["change"], 3, signed=True),
                "regressed" if r["regressed"] else "",
            ]
            for r in ordered
        ],
        ["label", "support", "champion F1", "candidate F1", "change", ""],
    )


def render_model_card(
    name: str,
    version: str,
    lineage: dict,
    evaluation: dict,
    outcome: dict,
    aliases: list[str],
    promotion_note: str | None = None,
    compact: bool = False,
) -> str:
    """The model card of one registered version. ``compact`` leaves out the per-class and slice tables."""
    gate = outcome["gate"]
    labels = sorted(lineage.get("label_map") or {}, key=lambda k: lineage["label_map"][k])
    status = ", ".join(aliases) if aliases else "no alias"
    lines = [f"# Model card: {name} version {version}", "", f"Status: **{status}**. {gate_headline(gate)}"]
    if promotion_note:
        lines += ["", f"Not promoted to champion: {promotion_note}"]
    lines += [
        "",
        "## Model",
        f"- Text classifier over {len(labels)} labels: {_labels(labels, compact)}.",
        f"- Fine-tuned ({lineage.get('method') or 'full'}) from `{lineage['base_model']}`, "
        f"inputs truncated to {lineage.get('max_length')} tokens.",
        "- Input: `text` (string). Output: `label` and `score` (the probability of that label).",
        f'- Load: `mlflow.pyfunc.load_model("models:/{name}/{version}")`; serve: '
        f"`mlflow models serve -m models:/{name}@champion --env-manager local`.",
        "",
        "## Lineage",
        markdown_table(
            [
                [
                    "source run",
                    f"`{lineage['source_run']}` ({lineage.get('run_name')}, experiment {lineage.get('experiment_id')})",
                ],
                ["data snapshot", f"`{lineage.get('snapshot_id')}`, {lineage.get('snapshot_rows')} rows"],
                ["snapshot content sha256", f"`{lineage.get('snapshot_sha256')}`"],
                ["manifest sha256", f"`{lineage.get('manifest_sha256')}`"],
                ["code version", f"`{lineage['code_version']}`"],
                ["base model", f"`{lineage['base_model']}`"],
                [
                    "trained",
                    f"{lineage.get('trained_at')} on {lineage.get('device')}, "
                    f"{_int(lineage.get('optimizer_steps'))} optimizer steps, "
                    f"{_num(lineage.get('train_seconds'), 1)} s, learning rate {lineage.get('learning_rate')}",
                ],
                [
                    "label map",
                    "the version's `label_map` tag"
                    if compact and len(labels) > SHORT_LIST
                    else f"`{json.dumps(lineage.get('label_map'), sort_keys=True)}`",
                ],
            ],
            ["what", "value"],
        ),
    ]
    metrics = evaluation["metrics"]
    lines += [
        f"## Test metrics (frozen test split, {metrics['test_rows']} rows)",
        markdown_table(
            [[_num(metrics["accuracy"]), _num(metrics["macro_f1"]), _num(metrics["ece"])]],
            ["accuracy", "macro-F1", "ECE"],
        ),
    ]
    if not compact:
        lines += [
            "## Per class",
            markdown_table(
                [
                    [r["label"], _num(r["precision"], 3), _num(r["recall"], 3), _num(r["f1"], 3), r["support"]]
                    for r in evaluation["per_class"]
                ],
                ["label", "precision", "recall", "F1", "support"],
            ),
        ]
        lines += [
            "## Slices",
            markdown_table(
                [
                    [r["slice"], r["value"], r["count"], _num(r["accuracy"], 3), _num(r["macro_f1"], 3)]
                    for r in evaluation.get("slices", [])
                ],
                ["slice", "value", "rows", "accuracy", "macro-F1"],
            ),
        ]
    lines += [
        "## Comparison with the champion",
        _comparison_summary(outcome),
        "",
        "## Limitations",
        *_limitations(evaluation),
        "",
    ]
    return "\n".join(lines)


def _labels(labels: list[str], compact: bool) -> str:
    if compact and len(labels) > SHORT_LIST:
        return ", ".join(labels[:SHORT_LIST]) + f", … ({len(labels) - SHORT_LIST} more)"
    return ", ".join(labels)


def _int(value) -> str:
    return "n/a" if value is None else str(int(value))


def _comparison_summary(outcome: dict) -> str:
    champion, comparison = outcome.get("champion"), outcome.get("comparison")
    if champion is None:
        return "No champion existed when this version was evaluated (first version)."
    if comparison is None or comparison.get("error"):
        return f"Champion version {champion['version']} could not be re-scored: {(comparison or {}).get('error')}."
    boot, test = comparison["bootstrap"], comparison["mcnemar"]
    regressed = [f"{r['label']} ({r['change']:+.3f})" for r in comparison["per_class"] if r["regressed"]]
    return (
        f"Against champion version {champion['version']}, re-scored on the same {outcome['test_rows']} test rows: "
        f"{METRIC_NAMES[outcome['primary_metric']]} {_num(boot['delta'], signed=True)} "
        f"({boot['confidence']:.0%} CI {_num(boot['low'], signed=True)} .. {_num(boot['high'], signed=True)}), "
        f"McNemar p = {test['p_value']:.4g} ({test['candidate_only']} vs {test['champion_only']} discordant rows); "
        f"regressed classes: {', '.join(regressed) or 'none'}. Full report: `registry/comparison.md` in the run."
    )


def _limitations(evaluation: dict) -> list[str]:
    metrics = evaluation["metrics"]
    notes = [
        "- Measured on a test split drawn from the same files as the training data (by text hash); "
        "texts from new sources or a shifted label mix may score lower."
    ]
    small = [r["label"] for r in evaluation["per_class"] if r["support"] < SMALL_SUPPORT]
    if small:
        notes.append(
            f"- Fewer than {SMALL_SUPPORT} test examples for: {_labels(small, compact=True)}; their F1 is unreliable."
        )
    weak = [r for r in sorted(evaluation["per_class"], key=lambda r: r["f1"]) if r["f1"] < metrics["macro_f1"]][:3]
    if weak:
        notes.append(
            "- Below the model's macro-F1: " + ", ".join(f"{r['label']} (F1 {r['f1']:.3f})" for r in weak) + "."
        )
    notes.append(f"- Expected calibration error {metrics['ece']:.3f}: {_calibration_note(metrics)}")
    return notes


def _calibration_note(metrics: dict) -> str:
    if metrics["ece"] <= 0.05:
        return "scores track accuracy closely and can be read as probabilities."
    confidence = metrics.get("mean_confidence")
    if confidence is None:
        return "do not read scores as probabilities."
    side = "under" if confidence < metrics["accuracy"] else "over"
    return (
        f"the model is {side}confident (mean score {confidence:.3f} vs accuracy {metrics['accuracy']:.3f}); "
        "do not read scores as probabilities, and choose any score threshold on held-out data."
    )


def fit_description(full: str, compact: str, limit: int = DESCRIPTION_LIMIT) -> str:
    """The full card when it fits the registry's description limit, else the compact one (cut if needed)."""
    if len(full) <= limit:
        return full
    if len(compact) <= limit:
        return compact
    note = "\n\n_(truncated: the full card is `registry/model_card.md` in the run)_"
    return compact[: limit - len(note)] + note
