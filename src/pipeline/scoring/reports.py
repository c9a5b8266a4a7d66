"""Markdown of the batch-inference artifact (pure string building, no Prefect calls)."""

from __future__ import annotations

from pathlib import Path

from pipeline.markdown import markdown_table
from pipeline.scoring.outcomes import ScoringOutcome


def _labels(counts: dict, rows: int) -> str:
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{label} {count / max(rows, 1):.0%}" for label, count in top)


def scoring_markdown(outcome: ScoringOutcome, link: str | None) -> str:
    model = (
        f"[{outcome.model_name} version {outcome.model_version}]({link})"
        if link and "://" in link
        else f"{outcome.model_name} version {outcome.model_version} (`{link or outcome.model_uri}`)"
    )
    files = [
        {
            "file": Path(f.uri).name,
            "status": f.status,
            "rows": f.rows,
            "labels": _labels(f.label_counts, f.rows),
            "mean confidence": f"{f.mean_confidence:.3f}" if f.mean_confidence is not None else "",
            "drift": (f"{f.drift['status']}: {f.drift['reason']}" if f.drift else "off"),
            "output": f.output or f.error or "",
            "to label": f.to_label or "",
        }
        for f in outcome.files
    ]
    skipped = [{"file": Path(s["uri"]).name, "reason": s["reason"]} for s in outcome.skipped]
    text = (
        f"# Batch inference\n\nModel {model}, requested as `{outcome.model_uri}`"
        + (f", computed in {outcome.precision}" if outcome.precision else "")
        + ".\n\n"
        f"{len(outcome.scored)} files scored ({outcome.rows} rows), {len(outcome.failed)} failed, "
        f"{len(outcome.skipped)} skipped.\n\n## Files\n"
        + markdown_table(files, ["file", "status", "rows", "labels", "mean confidence", "drift", "output", "to label"])
        + f"\n## Skipped\n{markdown_table(skipped, ['file', 'reason'])}"
    )
    for item in outcome.scored:
        findings = [c for c in (item.drift or {}).get("checks", []) if not c["success"]]
        if findings:
            rows = [
                {"check": c["rule"], "level": c["severity"], "observed": c["observed"], "expected": c["description"]}
                for c in findings
            ]
            table = markdown_table(rows, ["check", "level", "observed", "expected"])
            text += f"\n## Drift findings: {Path(item.uri).name}\n{table}"
    return text
