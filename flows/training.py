"""The training flow: ingest -> validate -> split -> tokenize -> fine-tune -> evaluate -> compare -> register."""

from __future__ import annotations

from prefect import flow

from pipeline.config import PipelineConfig
from pipeline.tasks.data import check_data_gate, ingest_data, prepare_workspace, split_data
from pipeline.tasks.evaluation import evaluate_model
from pipeline.tasks.links import link_runs
from pipeline.tasks.logs import forward_pipeline_logs
from pipeline.tasks.registry import compare_with_champion, register_model
from pipeline.tasks.training import fail_tracking, fine_tune, start_tracking, tokenize_data


@flow(name="training", log_prints=True, validate_parameters=True, on_running=[forward_pipeline_logs])
def training_flow(config: PipelineConfig = PipelineConfig()) -> dict:
    """Train, evaluate and register a text classifier on the newest data snapshot."""
    workspace = prepare_workspace(config)
    data = ingest_data(config, workspace)
    check_data_gate(data, config, workspace)
    splits = split_data(data.snapshot_id, config, workspace)
    tokenizer, label_map, tokenized = tokenize_data(splits, config, workspace)
    tracking = start_tracking(config, workspace, data.snapshot_id)
    try:
        trained = fine_tune(config, workspace, tracking, data.snapshot_id, tokenizer, label_map, tokenized)
        evaluation = evaluate_model(trained["model_dir"], splits["test"], config, workspace, tracking)
        comparison = compare_with_champion(config, tracking, splits["test"], evaluation)
        registered = register_model(config, tracking, trained["model_dir"], data.snapshot_id, evaluation, comparison)
    except BaseException as exc:
        fail_tracking(tracking, f"{type(exc).__name__}: {exc}")
        raise
    links = link_runs(config, tracking, registered)
    return {"status": "completed", "run_id": tracking["run_id"], "tracking_uri": tracking["tracking_uri"],
            "snapshot_id": data.snapshot_id, "new_files": data.new_files, **registered,
            "metrics": evaluation["metrics"], "resumed_from_step": trained["resumed_from_step"],
            "training": {k: trained[k] for k in ("steps", "samples_per_s", "train_seconds", "device", "best_epoch")},
            "links": links}
