"""``pipeline predict FILE|-``: score a file (or standard input, one text per line) with a registered model.

No Prefect and no ledger: the same scoring as the batch-inference flow, for a person at a terminal.
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOpt, JsonOpt, SetOpt, build_config, configure_logging, fail


def _default_output(workspace, source: str, file_format: str) -> Path:
    from datetime import datetime

    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    stem = "stdin" if source == "-" else Path(source.split("::")[-1]).name.split(".")[0] or "input"
    return workspace.root / "predictions" / f"{stem}.{stamp}.predictions.{file_format}"


def predict(
    source: Annotated[
        str, typer.Argument(metavar="FILE|-", help="File or URL to score; '-' reads standard input, one text per line.")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="models:/NAME@ALIAS or models:/NAME/VERSION (default: scoring.model_uri, else the champion).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Predictions file; .csv writes CSV, anything else Parquet (default: under predictions/).",
        ),
    ] = None,
    top_k: Annotated[int | None, typer.Option(help="Also write the k most likely labels.")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score FILE with a registered model and write its rows with label, score, model name, version and run id."""
    cfg = build_config(config, set_, as_json=as_json)
    configure_logging()
    from pipeline.data.sources import IngestionError
    from pipeline.scoring import steps
    from pipeline.scoring.model import ModelNotFoundError
    from pipeline.workspace import Workspace

    if top_k is not None:
        cfg.scoring.top_k = top_k
    workspace = Workspace.for_config(cfg).ensure()
    file_format = (
        "csv"
        if output is not None and output.suffix.lower() == ".csv"
        else ("parquet" if output is not None else cfg.scoring.output_format)
    )
    target = output.resolve() if output is not None else _default_output(workspace, source, file_format)
    try:
        scoring = steps.load_scoring_model(cfg, workspace, model)
        reference = steps.drift_reference(cfg, workspace, scoring) if source != "-" else None
        outcome = steps.score_source(cfg, scoring, source, target, reference, file_format=file_format)
    except (ModelNotFoundError, IngestionError, ValueError) as exc:
        fail(str(exc), as_json)
    drift = outcome.drift or {}
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "status": "completed",
                    "rows": outcome.rows,
                    "output": outcome.output,
                    "model_name": scoring.ref.model_name,
                    "model_version": scoring.ref.model_version,
                    "model_run_id": scoring.ref.run_id,
                    "label_counts": outcome.label_counts,
                    "mean_confidence": outcome.mean_confidence,
                    "drift": drift.get("status"),
                    "drift_reason": drift.get("reason"),
                },
                default=str,
            )
        )
    else:
        typer.echo(
            f"scored {outcome.rows} rows with {scoring.ref.model_name} v{scoring.ref.model_version} -> "
            f"{outcome.output}" + (f" (drift: {drift['status']}: {drift['reason']})" if drift else "")
        )
