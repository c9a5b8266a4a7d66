"""A workspace whose registry holds a champion trained (a few seconds, tiny BERT) on demo data, without Prefect."""

from __future__ import annotations

from pipeline.data.demo import write_demo_files
from pipeline.data.steps import ingest_and_validate, split_snapshot
from pipeline.evaluation.steps import evaluate_model
from pipeline.registry.steps import register_model, start_tracking
from pipeline.training.steps import tokenize_splits, train_model
from pipeline.workspace import prepare_workspace


def train_champion(config, rows: int = 600) -> dict:
    """Ingest demo batch 1, fine-tune, evaluate and register (the first version becomes champion)."""
    workspace = prepare_workspace(config)
    write_demo_files(workspace.landing, (1,), rows_per_batch=rows)
    data = ingest_and_validate(config, workspace)
    splits = split_snapshot(data.snapshot_id, config, workspace)
    tokenizer, label_map, tokenized = tokenize_splits(splits, config, workspace)
    tracking = start_tracking(config, workspace, data.snapshot_id)
    trained = train_model(config, workspace, tracking, data.snapshot_id, tokenizer, label_map, tokenized,
                          progress=False)
    evaluation = evaluate_model(trained["model_dir"], splits["test"], config, workspace, tracking)
    registered = register_model(config, tracking, trained["model_dir"], data.snapshot_id, evaluation)
    return {**registered, "metrics": evaluation["metrics"], "snapshot_id": data.snapshot_id}
