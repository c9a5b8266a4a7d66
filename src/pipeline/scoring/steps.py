"""Entry points of the scoring stage: load the model, score the inbox or one file, record drift."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pandas as pd
from filelock import FileLock

from pipeline.atomic import atomic_write_text
from pipeline.config import PipelineConfig
from pipeline.scoring import inbox
from pipeline.scoring.batch import StreamResult, score_stream
from pipeline.scoring.drift import check_drift, seen_token_mask
from pipeline.scoring.inputs import STDIN, iter_stdin_lines, iter_unlabeled_chunks
from pipeline.scoring.model import ModelNotFoundError, ScoringModel, compute_precision, load_registered_model
from pipeline.scoring.outcomes import FileOutcome, ScoringOutcome
from pipeline.scoring.to_label import select_to_label
from pipeline.scoring.writer import PredictionWriter
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)

LOCK_TIMEOUT_S = 600.0


def default_model_uri(config: PipelineConfig) -> str:
    return config.scoring.model_uri or f"models:/{config.registry.model_name}@champion"


def text_column(config: PipelineConfig) -> str:
    return config.scoring.text_column or config.data.text_column


def load_scoring_model(config: PipelineConfig, workspace: Workspace, model_uri: str | None = None) -> ScoringModel:
    """The model ``model_uri`` (default ``scoring.model_uri``, else the champion) names now, loaded for inference."""
    tracking_uri = workspace.tracking_uri(config.tracking.tracking_uri)
    scoring = load_registered_model(
        tracking_uri, model_uri or default_model_uri(config), workspace.cache / "models", config.scoring.device
    )
    scoring.precision = config.scoring.precision
    return scoring


def load_champion_if_any(config: PipelineConfig, workspace: Workspace, model_uri: str | None = None):
    """As ``load_scoring_model``, but None while no champion exists yet and no model was named: a scheduled run
    that fires before the first promotion leaves the inbox waiting instead of failing. A named model must exist."""
    try:
        return load_scoring_model(config, workspace, model_uri)
    except ModelNotFoundError:
        if model_uri or config.scoring.model_uri:
            raise
        logger.warning("%s has no champion yet: nothing scored, the inbox waits", config.registry.model_name)
        return None


def drift_reference(config: PipelineConfig, workspace: Workspace, scoring: ScoringModel) -> dict | None:
    from pipeline.scoring.reference import load_drift_reference

    if not config.scoring.drift:
        return None
    return load_drift_reference(config, workspace, scoring, workspace.tracking_uri(config.tracking.tracking_uri))


def write_to_label(config: PipelineConfig, result: StreamResult, path: Path) -> str | None:
    """The least certain texts as a CSV in the landing zone's format (text column, no label) plus context columns."""
    chosen = select_to_label(result.candidates, config.scoring.to_label_rows)
    if chosen.empty:
        return None
    out = chosen.rename(columns={"text": config.data.text_column, "row": "source_row"})
    atomic_write_text(path, out.to_csv(index=False))
    return str(path)


def score_source(
    config: PipelineConfig,
    scoring: ScoringModel,
    source: str,
    output: Path,
    reference: dict | None,
    file_format: str | None = None,
    to_label_path: Path | None = None,
) -> FileOutcome:
    """Score one file (or ``-``: standard input) into ``output``, written atomically; drift and to-label as configured.

    Raises IngestionError for unreadable input; nothing is left under ``output`` then.
    """
    started = time.perf_counter()
    settings = config.scoring
    column = text_column(config)
    chunks = (
        iter_stdin_lines(settings.chunk_rows, column)
        if source == STDIN
        else iter_unlabeled_chunks(source, column, settings.chunk_rows, settings.format, config.data.encoding)
    )
    seen = seen_token_mask(reference, len(scoring.tokenizer)) if reference else None
    to_label_rows = settings.to_label_rows if to_label_path is not None else 0
    with PredictionWriter(output, file_format or settings.output_format) as writer:
        result = score_stream(scoring, chunks, column, writer, settings, seen, to_label_rows)
        if result.rows == 0:
            raise ValueError(f"{source}: no rows to score")
        writer.commit()
    drift = check_drift(result.features, reference, settings).to_dict() if settings.drift else None
    labelled = write_to_label(config, result, to_label_path) if to_label_rows else None
    return FileOutcome(
        uri=source,
        status=inbox.SCORED,
        rows=result.rows,
        output=str(output),
        label_counts=dict(sorted(result.label_counts.items())),
        mean_confidence=result.mean_confidence,
        drift=drift,
        to_label=labelled,
        seconds=time.perf_counter() - started,
    )


def score_inbox(
    config: PipelineConfig, workspace: Workspace, scoring: ScoringModel, paths: list[str] | None = None
) -> ScoringOutcome:
    """Score every input not scored before (``paths``, else ``scoring.inputs``, else the inbox folder).

    One file failing is recorded (ledger and outcome) and the others still run. Holds the workspace's scoring
    lock, so two runs never score the same file.
    """
    settings = config.scoring
    sources = paths or settings.inputs or [str(inbox.inbox_dir(workspace))]
    inbox.inbox_dir(workspace).mkdir(parents=True, exist_ok=True)
    ledger = inbox.ScoringLedger(workspace)
    ref = scoring.ref
    files: list[FileOutcome] = []
    with FileLock(str(inbox.lock_path(workspace)), timeout=LOCK_TIMEOUT_S):
        todo, skipped = ledger.plan(inbox.list_inputs(sources), settings.max_attempts)
        reference = drift_reference(config, workspace, scoring) if todo else None
        for item in todo:
            output = inbox.predictions_dir(workspace) / inbox.output_name(item.uri, item.sha256, settings.output_format)
            to_label_path = (
                inbox.to_label_dir(workspace) / inbox.output_name(item.uri, item.sha256, "csv", "to_label")
                if settings.to_label_rows
                else None
            )
            try:
                outcome = score_source(config, scoring, item.uri, output, reference, to_label_path=to_label_path)
            except Exception as exc:  # one bad file must not stop the others; the ledger keeps the reason
                logger.exception("scoring %s failed", item.uri)
                outcome = FileOutcome(
                    uri=item.uri, status=inbox.FAILED, sha256=item.sha256, error=f"{type(exc).__name__}: {exc}"
                )
                ledger.record(item, inbox.FAILED, error=outcome.error, model_version=ref.model_version)
            else:
                outcome = FileOutcome(**{**outcome.to_dict(), "sha256": item.sha256})
                ledger.record(
                    item,
                    inbox.SCORED,
                    output=outcome.output,
                    rows=outcome.rows,
                    model_name=ref.model_name,
                    model_version=ref.model_version,
                    model_run_id=ref.run_id,
                    to_label=outcome.to_label,
                    drift=(outcome.drift or {}).get("status"),
                    error=None,
                )
            files.append(outcome)
    return ScoringOutcome(
        model_name=ref.model_name,
        model_version=ref.model_version,
        model_run_id=ref.run_id,
        model_uri=ref.requested_uri,
        files=files,
        skipped=skipped,
        precision=compute_precision(scoring),
    )


def record_scoring(config: PipelineConfig, workspace: Workspace, outcome: ScoringOutcome) -> str | None:
    """Store the run's drift reports on the version's MLflow run and tag the version; returns a link to the version."""
    from pipeline.registry import tracking as registry

    tracking_uri = workspace.tracking_uri(config.tracking.tracking_uri)
    client = registry.client(tracking_uri)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for item in outcome.scored:
        if outcome.model_run_id and item.drift:
            name = inbox.output_name(item.uri, item.sha256 or "00000000", "json", "drift")
            client.log_text(
                outcome.model_run_id, json.dumps(item.drift, indent=1, default=str), f"drift/{stamp}/{name}"
            )
    if outcome.scored:
        statuses = [(f.drift or {}).get("status") for f in outcome.scored]
        worst = next((s for s in ("error", "warning", "ok") if s in statuses), "skipped")
        for key, value in {
            "scoring.last_run": stamp,
            "scoring.last_rows": str(outcome.rows),
            "drift.last_status": worst,
        }.items():
            client.set_model_version_tag(outcome.model_name, outcome.model_version, key, value)
    return version_link(tracking_uri, outcome)


def version_link(tracking_uri: str, outcome: ScoringOutcome) -> str | None:
    """The MLflow UI page of the version when tracking goes to a server, else the version's URI."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/#/models/{outcome.model_name}/versions/{outcome.model_version}"
    return f"models:/{outcome.model_name}/{outcome.model_version}"


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A predictions file (Parquet or CSV) as a frame."""
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
