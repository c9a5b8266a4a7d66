"""The training flow: ingest -> validate -> split -> tokenize -> fine-tune -> evaluate -> compare -> register."""

from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from pipeline.config import PipelineConfig, with_run_options
from pipeline.results import training_summary
from pipeline.tasks.data import ingest_data, prepare_workspace, split_data
from pipeline.tasks.evaluation import compare_with_champion, evaluate_model
from pipeline.tasks.guard import one_run_per_model
from pipeline.tasks.links import link_runs
from pipeline.tasks.logs import forward_pipeline_logs
from pipeline.tasks.registry import fail_tracking, register_model, start_tracking
from pipeline.tasks.training import fine_tune, tokenize_data
from pipeline.tasks.validation import check_data_gate


@flow(name="training", log_prints=True, validate_parameters=True, on_running=[forward_pipeline_logs])
def training_flow(
    data_paths: list[str] | None = None,
    base_model: str | None = None,
    method: Literal["full", "lora"] | None = None,
    epochs: Annotated[int | None, Field(ge=1, le=100)] = None,
    learning_rate: Annotated[float | None, Field(gt=0.0, le=1.0)] = None,
    promote: bool | None = None,
    config: PipelineConfig = PipelineConfig(),
) -> dict:
    """Train, evaluate and register a text classifier on the newest data snapshot.

    Args:
        data_paths: Labeled files, folders or URLs to ingest (CSV, TSV, JSONL, Parquet). Empty list: the landing zone.
        base_model: Pretrained model to fine-tune: a hub id, a local folder, or the packaged MiniLM.
        method: full fine-tuning, or LoRA adapters (faster, smaller updates).
        epochs: Passes over the training split (1-100).
        learning_rate: Peak AdamW learning rate (1e-4 suits the packaged MiniLM; 2e-5 to 5e-5 base-size models).
        promote: Make the new version champion at once when it passes the gate (else it becomes challenger).
        config: Advanced settings: every other configuration key, with its default. None in a field above keeps
            the value set here.
    """
    config = with_run_options(
        config,
        data_paths=data_paths,
        base_model=base_model,
        method=method,
        epochs=epochs,
        learning_rate=learning_rate,
        promote=promote,
    )
    workspace = prepare_workspace(config)
    with one_run_per_model(config, workspace, what="training flow"):
        data = ingest_data(config, workspace)
        check_data_gate(config, workspace, data)
        splits = split_data(config, workspace, data)
        tokenized = tokenize_data(config, workspace, splits)
        tracking = start_tracking(config, workspace, data)
        try:
            trained = fine_tune(config, workspace, tracking, tokenized)
            evaluation = evaluate_model(config, workspace, tracking, trained, splits)
            comparison = compare_with_champion(config, workspace, tracking, evaluation, splits)
            registration = register_model(config, workspace, tracking, trained, evaluation, comparison)
        except BaseException as exc:
            fail_tracking(tracking, f"{type(exc).__name__}: {exc}")
            raise
    links = link_runs(config, tracking, registration)
    return {**training_summary(data, tracking, trained, evaluation, registration), "links": links}
