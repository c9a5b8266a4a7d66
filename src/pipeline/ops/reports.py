"""Markdown reports of each stage, published as Prefect artifacts (pure string building)."""

from __future__ import annotations

from pathlib import Path

from pipeline.markdown import markdown_table
from pipeline.results import Comparison, DataOutcome, Evaluation, Registration, RetrainingCheck, TrainedModel


def data_markdown(outcome: DataOutcome) -> str:
    new = [
        {
            "file": Path(u).name,
            "contract": "passed" if outcome.contracts.get(u, {}).get("success", True) else "failed",
            "warnings": len(outcome.contracts.get(u, {}).get("warnings", [])),
        }
        for u in outcome.new_files
    ]
    quarantined = [{"file": Path(q["uri"]).name, "rule": q["rule"], "report": q["report"]} for q in outcome.quarantined]
    skipped = [{"file": Path(s["uri"]).name, "reason": s["reason"]} for s in outcome.skipped_files]
    return (
        f"# Data ingestion\n\nSnapshot **{outcome.snapshot_id}** "
        f"({'new' if outcome.snapshot_changed else 'unchanged'}), "
        f"{outcome.rows_added} rows added.\n\n## New files\n{markdown_table(new, ['file', 'contract', 'warnings'])}"
        f"\n## Quarantined\n{markdown_table(quarantined, ['file', 'rule', 'report'])}"
        f"\n## Skipped (already ingested)\n{markdown_table(skipped, ['file', 'reason'])}"
    )


def contracts_markdown(outcome: DataOutcome) -> str:
    """Every expectation's result and observed value, one table per file validated in this run."""
    from pipeline.validation.results import ContractResult

    if not outcome.contracts:
        return "# Data contract\n\nNo new files were validated in this run.\n"
    sections = [
        ContractResult.from_dict(contract).to_markdown(f"Data contract: {Path(uri).name}")
        for uri, contract in outcome.contracts.items()
    ]
    return "# Data contract\n\n" + "\n".join(sections)


def training_markdown(trained: TrainedModel) -> str:
    rows = [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in trained.history]
    columns = sorted({k for r in rows for k in r}, key=lambda k: (k != "epoch", k))
    resumed = trained.resumed_from_step
    return (
        f"# Fine-tuning\n\n{trained.steps}/{trained.planned_steps} optimizer steps on {trained.device}, "
        f"{trained.samples_per_s:.1f} samples/s, {trained.train_seconds:.1f} s"
        f"{f', resumed from step {resumed}' if resumed is not None else ''}; best epoch {trained.best_epoch}"
        f"{' (stopped early)' if trained.stopped_early else ''}.\n\n{markdown_table(rows, columns)}"
    )


def evaluation_markdown(evaluation: Evaluation) -> str:
    m = evaluation.metrics
    per_class = [{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()} for r in evaluation.per_class]
    return (
        f"# Evaluation on the frozen test split\n\naccuracy **{m['accuracy']:.4f}**, macro-F1 **{m['macro_f1']:.4f}**, "
        f"ECE {m['ece']:.4f}, {m['test_rows']} rows.\n\n## Per class\n"
        f"{markdown_table(per_class, ['label', 'precision', 'recall', 'f1', 'support'])}"
    )


def comparison_markdown(comparison: Comparison) -> str:
    """The comparison report (built by the library, so the run's artifact and this one are the same text)."""
    from pipeline.registry.model_card import render_comparison

    return comparison.report or render_comparison(comparison.to_dict())


def registration_markdown(registered: Registration) -> str:
    gate = registered.gate
    head = (
        f"# Registered {registered.model_name} version {registered.model_version}\n\n"
        f"aliases: {', '.join(registered.aliases) or '(none)'}\n\n"
        f"gate: {'passed' if gate['passed'] else 'failed'}: {gate['reason']}\n"
    )
    if registered.promotion_note:
        head += f"\nnot promoted to champion: {registered.promotion_note}\n"
    return head + ("\n---\n\n" + registered.model_card if registered.model_card else "")


def new_data_markdown(check: RetrainingCheck) -> str:
    """Retraining's check: what arrived since the last training and whether the run trains."""
    new_data = check.new_data
    files = (
        [{"file": Path(u).name, "where": "landing zone (pending)"} for u in new_data["pending_files"]]
        + [{"file": Path(u).name, "where": "ingested, not trained yet"} for u in new_data["untrained_files"]]
        + [{"file": Path(u["uri"]).name, "where": f"unreadable: {u['rule']}"} for u in new_data["unreadable_files"]]
    )
    verdict = "train" if check.train else "skip"
    return (
        f"# New data: {verdict}\n\n{check.reason}\n\n"
        f"head snapshot `{new_data['head_snapshot']}`, last trained snapshot `{new_data['trained_snapshot']}`\n\n"
        f"## Files\n{markdown_table(files, ['file', 'where'])}"
    )


def failure_markdown(
    flow_name: str, run_name: str, state: str, reason: str, run_url: str | None, webhook: str | None
) -> str:
    """What a failed or crashed deployed run says about itself."""
    link = f"\n\n[Open the run]({run_url})" if run_url else ""
    return (
        f"# {flow_name} run {run_name}: {state}\n\n```\n{reason.strip()[:4000]}\n```\n\n"
        f"webhook: {webhook or 'not configured (notifications.webhook_url)'}{link}\n"
    )
