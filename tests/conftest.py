"""Shared fixtures: a tiny random BERT with the real tokenizer, temporary workspaces, configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.workspace import OFFLINE_DEFAULTS

for _key, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.pop("MLFLOW_TRACKING_URI", None)

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(
    os.environ.get("PIPELINE_SHARED_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)


@pytest.fixture(autouse=True)
def _tracking_uri_does_not_leak():
    """mlflow.set_tracking_uri in a test exports MLFLOW_TRACKING_URI; the next test must not inherit it."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-wide randomly initialised BERT saved with the packaged MiniLM tokenizer; the same weights in
    every session (seeded), so that a test of learning cannot pass or fail with the luck of the draw."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from pipeline.training.modeling import load_tokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = load_tokenizer("packaged:all-minilm-l6-v2")
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
        num_labels=2,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def workspace_dir(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "ws"
    monkeypatch.setenv("PIPELINE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return home


@pytest.fixture
def tiny_config(workspace_dir, tiny_model_dir):
    """A fast configuration: tiny model, one short epoch, small batches."""
    from pipeline.config import load_config

    return load_config(
        overrides=[
            f"workspace={workspace_dir}",
            f"model.name_or_path={tiny_model_dir}",
            "model.max_length=64",
            "training.epochs=1",
            "training.batch_size=16",
            "training.learning_rate=0.001",
            "training.checkpoint_steps=1000",
            "registry.model_name=tiny-classifier",
        ]
    )


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
