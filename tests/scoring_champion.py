"""A workspace whose registry holds a champion trained (tiny BERT, seconds) on demo data, without Prefect.

The data contract and the evaluation step are left out (other tests cover them): only what scoring needs,
a snapshot, a trained model folder with its ``pipeline.json``, and a registered version tagged with the
snapshot and aliased champion.
"""

from __future__ import annotations

from pipeline.data.demo import write_demo_files
from pipeline.data.steps import split_snapshot
from pipeline.data.store import DataStore
from pipeline.registry import tracking as registry
from pipeline.registry.steps import start_tracking
from pipeline.training.steps import tokenize_splits, train_model
from pipeline.workspace import prepare_workspace

REVIEWS = [
    f"The film's {adjective} performances and {quality} cinematography make this a {verdict} piece of cinema."
    for adjective in ("luminous", "wooden", "subtle", "overwrought", "tender")
    for quality in ("breathtaking", "muddy", "restless")
    for verdict in ("haunting", "tedious", "dazzling")
]


def train_champion(config, rows: int = 600) -> dict:
    """Ingest demo batch 1, fine-tune, register the version as champion; returns its accuracy on the test split."""
    from pipeline.scoring.model import ModelRef, load_model_folder
    from pipeline.scoring.scorer import score_chunk

    workspace = prepare_workspace(config)
    write_demo_files(workspace.landing, (1,), rows_per_batch=rows)
    snapshot_id = DataStore(workspace, config.data).ingest().snapshot_id
    splits = split_snapshot(config, workspace, snapshot_id)
    tokenized = tokenize_splits(config, workspace, splits)
    tracking = start_tracking(config, workspace, snapshot_id)
    trained = train_model(config, workspace, tracking, tokenized, progress=False)
    client = registry.client(tracking.tracking_uri)
    name, run_id = config.registry.model_name, tracking.run_id
    model_uri = registry.log_model(run_id, trained.model_dir, ["my parcel is late"])
    version = registry.register_version(client, model_uri, name, run_id, {"snapshot_id": snapshot_id}, "test champion")
    client.set_registered_model_alias(name, registry.CHAMPION, version.version)
    registry.end_run(client, run_id)
    scoring = load_model_folder(trained.model_dir, ModelRef(name, str(version.version), run_id, "local"))
    test = splits.test
    predicted = score_chunk(scoring, test["text"].tolist(), 64).predictions["label"]
    return {
        "model_name": name,
        "model_version": str(version.version),
        "snapshot_id": snapshot_id,
        "accuracy": float((predicted.to_numpy() == test["label"].to_numpy()).mean()),
    }


def champion_config(root, tiny_model_dir: str):
    """Settings of the champion fixtures: tiny model, a few quick epochs, to-label and top-k on."""
    from pipeline.config import load_config

    return load_config(
        overrides=[
            f"workspace={root / 'ws'}",
            f"model.name_or_path={tiny_model_dir}",
            "model.max_length=64",
            "training.epochs=6",
            "training.batch_size=16",
            "training.learning_rate=0.001",
            "training.checkpoint_steps=1000",
            "registry.model_name=tiny-scorer",
            "validation.data_docs=false",
            "scoring.to_label_rows=5",
            "scoring.top_k=2",
        ],
        environ={},
    )
