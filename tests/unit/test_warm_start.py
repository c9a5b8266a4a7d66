"""Warm start from the champion: resolved in a temporary SQLite MLflow store, then trained a few steps."""

import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig, load_config
from pipeline.data.demo import generate_demo_rows
from pipeline.registry import tracking as registry
from pipeline.training.modeling import build_label_map, load_model, load_tokenizer, save_model
from pipeline.training.tokenization import tokenize_split
from pipeline.training.warm_start import resolve_warm_start
from pipeline.workspace import Workspace

MODEL_NAME = "warm-classifier"


@pytest.fixture(scope="module")
def champion_store(tiny_model_dir, tmp_path_factory):
    """A SQLite MLflow store whose model has a champion: the tiny BERT with a trained-looking head."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = registry.client(uri)
    experiment = registry.ensure_experiment(client, "warm", (root / "artifacts").as_uri())
    tokenizer = load_tokenizer(tiny_model_dir)
    frame = generate_demo_rows(120, seed=5)
    label_map = build_label_map(frame["label"])
    torch.manual_seed(1)
    model = load_model(tiny_model_dir, label_map, ModelConfig())
    with torch.no_grad():
        model.classifier.weight.add_(torch.randn_like(model.classifier.weight))  # unlike any fresh head
    model_dir = save_model(model, tokenizer, root / "champion")
    registry.write_model_meta(model_dir, {"max_length": 64, "label_map": label_map, "base_model": tiny_model_dir})
    run_id = registry.start_run(client, experiment, "champion", {}, {})
    model_uri = registry.log_model(run_id, model_dir, ["hello"])
    version = registry.register_version(client, model_uri, MODEL_NAME, run_id, {}, "champion")
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    registry.end_run(client, run_id)
    return {
        "uri": uri,
        "root": root,
        "label_map": label_map,
        "frame": frame,
        "tokenizer": tokenizer,
        "champion": model,
        "experiment": experiment,
    }


def test_warm_start_loads_the_champion_weights(champion_store, tiny_model_dir, tmp_path):
    warm = resolve_warm_start(
        champion_store["uri"], MODEL_NAME, tiny_model_dir, champion_store["label_map"], tmp_path / "download"
    )
    assert warm.warm and warm.champion_uri == f"models:/{MODEL_NAME}/1"
    loaded = load_model(warm.source, champion_store["label_map"], ModelConfig())
    assert loaded.pipeline_new_parameters == set()  # a trained head: no head learning-rate boost
    expected = champion_store["champion"].state_dict()
    assert all(torch.equal(v, expected[k]) for k, v in loaded.state_dict().items())


def test_warm_start_falls_back_to_the_base_model_when_it_does_not_fit(champion_store, tiny_model_dir, tmp_path, caplog):
    other_labels = {**champion_store["label_map"], "refund": len(champion_store["label_map"])}
    warm = resolve_warm_start(champion_store["uri"], MODEL_NAME, tiny_model_dir, other_labels, tmp_path / "a")
    assert not warm.warm and warm.source == tiny_model_dir
    assert "other labels" in warm.reason and "refund" in warm.reason and "refund" in caplog.text
    swapped = dict(zip(champion_store["label_map"], reversed(list(champion_store["label_map"].values()))))
    assert not resolve_warm_start(champion_store["uri"], MODEL_NAME, tiny_model_dir, swapped, tmp_path / "b").warm
    other_base = resolve_warm_start(
        champion_store["uri"], MODEL_NAME, "some/other-model", champion_store["label_map"], tmp_path / "c"
    )
    assert not other_base.warm and "trained from" in other_base.reason
    nothing = resolve_warm_start(
        champion_store["uri"], "no-such-model", tiny_model_dir, champion_store["label_map"], tmp_path / "d"
    )
    assert not nothing.warm and "no champion yet" in nothing.reason and nothing.tag().startswith("none: ")


def test_train_model_with_warm_start_trains_from_the_champion(champion_store, tiny_model_dir, tmp_path):
    from pipeline.results import TokenizedData, TrackingRun
    from pipeline.training.steps import train_model

    config = load_config(
        overrides=[
            f"workspace={tmp_path / 'ws'}",
            f"model.name_or_path={tiny_model_dir}",
            "model.max_length=64",
            "model.warm_start=true",
            f"registry.model_name={MODEL_NAME}",
            f"tracking.tracking_uri={champion_store['uri']}",
            "training.max_steps=3",
            "training.batch_size=16",
            "training.learning_rate=0.001",
        ]
    )
    workspace = Workspace.resolve(config.workspace).ensure()
    client = registry.client(champion_store["uri"])
    run_id = registry.start_run(client, champion_store["experiment"], "warm", {}, {})
    tokenizer, label_map, frame = champion_store["tokenizer"], champion_store["label_map"], champion_store["frame"]
    tokenized = {
        "train": tokenize_split(frame.iloc[:96], tokenizer, label_map, 64, None),
        "validation": tokenize_split(frame.iloc[96:], tokenizer, label_map, 64, None),
    }
    tracking = TrackingRun(
        tracking_uri=champion_store["uri"], run_id=run_id, experiment_id=champion_store["experiment"]
    )
    trained = train_model(
        config, workspace, tracking, TokenizedData("snap", label_map, tokenizer, tokenized), progress=False
    )
    assert trained.warm_start == f"models:/{MODEL_NAME}/1" and trained.steps == 3
    run = client.get_run(run_id)
    assert run.data.tags["warm_start"] == f"models:/{MODEL_NAME}/1" and run.data.tags["resumed"] == "false"
    from transformers import AutoModelForSequenceClassification

    result = AutoModelForSequenceClassification.from_pretrained(trained.model_dir)
    champion = champion_store["champion"].classifier.weight.detach()
    # Three small steps from the champion stay near it; a fresh head would be ~N(0, 0.02), far from it.
    assert torch.dist(result.classifier.weight.detach(), champion) < 0.1 * champion.norm()
    assert not torch.equal(result.classifier.weight.detach(), champion)
    assert (np.load(trained.sample_counts) == 1).sum() == 48  # 3 steps of 16 examples, each seen once
