"""Training must learn: a tiny model separates a synthetic task, and the same check fails when learning breaks.

The task: four classes, each a disjoint set of common words; a text is six words drawn from its class's
set. A working loop reaches >= 0.95 held-out accuracy and cuts the training cross-entropy by at least
LOSS_FACTOR; a scrambled label map or a loss detached from the model must fail that very check.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config import ModelConfig, TrainingConfig
from pipeline.training.devices import seed_everything
from pipeline.training.inference import predict_proba
from pipeline.training.loop import fine_tune
from pipeline.training.modeling import build_label_map, load_model, load_tokenizer
from pipeline.training.tokenization import TokenizedSplit, tokenize_split

MIN_ACCURACY = 0.95
LOSS_FACTOR = 4.0  # the training cross-entropy must fall at least this many times
WORDS = {
    "fruit": "apple banana cherry grape lemon mango orange peach pear plum",
    "weather": "rain snow wind storm cloud sun thunder fog frost heat",
    "sport": "football tennis golf hockey boxing rugby cricket soccer baseball cycling",
    "music": "guitar piano violin drum song melody trumpet flute choir jazz",
}


def synthetic_frame(rows: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    labels = [rng.choice(sorted(WORDS)) for _ in range(rows)]
    texts = [" ".join(rng.choice(WORDS[label].split()) for _ in range(6)) for label in labels]
    return pd.DataFrame({"text": texts, "label": labels})


@pytest.fixture(autouse=True)
def one_thread():
    """A 32-wide model gains nothing from more threads, and loses much when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def synthetic(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    train_frame, test_frame = synthetic_frame(320, seed=1), synthetic_frame(160, seed=2)
    label_map = build_label_map(train_frame["label"])
    train = tokenize_split(train_frame, tokenizer, label_map, 32, None)
    test = tokenize_split(test_frame, tokenizer, label_map, 32, None)
    return tokenizer, label_map, train, test


def cross_entropy(model, split: TokenizedSplit, pad_id: int) -> float:
    proba = predict_proba(model, split.input_ids, pad_id, 64, torch.device("cpu"))
    return float(-np.log(np.clip(proba[np.arange(len(split)), split.labels], 1e-12, None)).mean())


def train_and_measure(tiny_model_dir, synthetic, tmp_path, train_labels=None, pooling="auto") -> dict:
    """Train on the synthetic task; held-out accuracy and the training loss before and after."""
    tokenizer, label_map, train, test = synthetic
    if train_labels is not None:
        train = TokenizedSplit(input_ids=train.input_ids, labels=train_labels, cache_key="scrambled")
    seed_everything(0)
    model = load_model(tiny_model_dir, label_map, ModelConfig(pooling=pooling))
    before = cross_entropy(model, train, tokenizer.pad_token_id)
    config = TrainingConfig(
        epochs=4,
        batch_size=16,
        learning_rate=5e-3,
        head_learning_rate_factor=1,
        warmup_ratio=0.1,
        early_stopping_patience=None,
        checkpoint_steps=10_000,
    )
    result = fine_tune(model, train, None, tokenizer.pad_token_id, config, tmp_path / "ckpt", {}, progress=False)
    proba = predict_proba(result.model, test.input_ids, tokenizer.pad_token_id, 64, torch.device("cpu"))
    return {
        "accuracy": float((proba.argmax(axis=1) == test.labels).mean()),
        "loss_before": before,
        "loss_after": cross_entropy(result.model, train, tokenizer.pad_token_id),
    }


def assert_learns(measured: dict) -> None:
    assert measured["accuracy"] >= MIN_ACCURACY, measured
    assert measured["loss_after"] * LOSS_FACTOR <= measured["loss_before"], measured


@pytest.mark.parametrize("pooling", ["pooler", "mean"])
def test_tiny_model_learns_a_separable_task(tiny_model_dir, synthetic, tmp_path, pooling):
    assert_learns(train_and_measure(tiny_model_dir, synthetic, tmp_path, pooling=pooling))


def test_a_scrambled_label_map_fails_the_learning_check(tiny_model_dir, synthetic, tmp_path):
    _, label_map, train, _ = synthetic
    permutation = np.roll(np.arange(len(label_map)), 1)  # every class id means another class in training
    measured = train_and_measure(tiny_model_dir, synthetic, tmp_path, train_labels=permutation[train.labels])
    with pytest.raises(AssertionError):
        assert_learns(measured)
    assert measured["accuracy"] < 0.5


def test_a_detached_loss_fails_the_learning_check(tiny_model_dir, synthetic, tmp_path, monkeypatch):
    real = torch.nn.CrossEntropyLoss

    class DetachedLoss(real):
        """A loss whose value is right but whose gradient never reaches the model (a common bug)."""

        def forward(self, logits, labels):
            return super().forward(logits.detach(), labels) + 0.0 * logits.sum()

    monkeypatch.setattr(torch.nn, "CrossEntropyLoss", DetachedLoss)
    measured = train_and_measure(tiny_model_dir, synthetic, tmp_path)
    with pytest.raises(AssertionError):
        assert_learns(measured)
