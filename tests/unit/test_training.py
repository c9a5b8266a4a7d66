import numpy as np
import pytest
import torch

from pipeline.batching import collate, epoch_batches, pad_batch
from pipeline.checkpoints import CheckpointMismatch, list_checkpoints
from pipeline.config import ModelConfig, TrainingConfig
from pipeline.modeling import build_label_map, load_model, load_tokenizer
from pipeline.tokenization import TokenizedSplit, tokenize_split
from pipeline.training import fine_tune, plan_steps, seed_everything


def test_epoch_batches_cover_every_index_once_and_group_lengths():
    lengths = np.random.default_rng(0).integers(3, 100, size=1000)
    batches = epoch_batches(lengths, 32, seed=1, epoch=0)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    random_order = epoch_batches(lengths, 32, seed=1, epoch=0, group_by_length=False)
    padded_random = sum(len(b) * lengths[b].max() for b in random_order)
    assert lengths.sum() / padded > 0.9 > lengths.sum() / padded_random


def test_epoch_order_depends_only_on_seed_and_epoch():
    lengths = np.arange(100)
    a = epoch_batches(lengths, 8, 3, 2)
    b = epoch_batches(lengths, 8, 3, 2)
    c = epoch_batches(lengths, 8, 3, 3)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == y).all() for x, y in zip(a, c))


def test_pad_and_collate():
    ids, mask = pad_batch([np.array([1, 2, 3]), np.array([4])], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    batch = collate([np.array([5]), np.array([6, 7])], np.array([1, 0]), np.array([1, 0]), 0)
    assert batch["labels"].tolist() == [0, 1]


def test_plan_steps_with_accumulation_and_max_steps():
    assert plan_steps(100, TrainingConfig(batch_size=10, gradient_accumulation_steps=3, epochs=2)) == (4, 8, 2)
    assert plan_steps(100, TrainingConfig(batch_size=10, max_steps=25)) == (10, 25, 3)


def test_linear_schedule_warms_up_then_decays():
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = get_linear_schedule_with_warmup(optimizer, 2, 10)
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0 and lrs[2] == 1.0 and lrs[-1] < lrs[3]


@pytest.fixture(scope="module")
def tiny_data(tiny_model_dir):
    import pandas as pd

    from pipeline.demo import generate_demo_rows

    tokenizer = load_tokenizer(tiny_model_dir)
    frame = generate_demo_rows(160, seed=3)
    label_map = build_label_map(frame["label"])
    train = tokenize_split(frame.iloc[:128], tokenizer, label_map, 64, None)
    validation = tokenize_split(frame.iloc[128:], tokenizer, label_map, 64, None)
    return tokenizer, label_map, train, validation


def train_tiny(tiny_model_dir, tiny_data, tmp_path, **overrides):
    tokenizer, label_map, train, validation = tiny_data
    config = TrainingConfig(**{"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "checkpoint_steps": 3,
                               "early_stopping_patience": None, **overrides})
    seed_everything(config.seed)
    model = load_model(tiny_model_dir, label_map, ModelConfig(method=overrides.pop("method", "full")))
    return fine_tune(model, train, validation, tokenizer.pad_token_id, config, tmp_path / "ckpt",
                     {"run": "tiny"}, progress=False)


def test_every_example_seen_once_per_epoch(tiny_model_dir, tiny_data, tmp_path):
    result = train_tiny(tiny_model_dir, tiny_data, tmp_path)
    assert result.steps == result.planned_steps == 16
    assert (result.sample_counts == 2).all()
    assert len(result.history) == 2 and "val_macro_f1" in result.history[-1]


def test_cpu_training_is_deterministic(tiny_model_dir, tiny_data, tmp_path):
    a = train_tiny(tiny_model_dir, tiny_data, tmp_path / "a")
    b = train_tiny(tiny_model_dir, tiny_data, tmp_path / "b")
    assert a.history == b.history
    assert a.step_log == b.step_log


def test_checkpoints_are_pruned_and_refused_for_other_fingerprints(tiny_model_dir, tiny_data, tmp_path):
    tokenizer, label_map, train, validation = tiny_data
    config = TrainingConfig(epochs=1, batch_size=16, checkpoint_steps=2, keep_checkpoints=2)
    model = load_model(tiny_model_dir, label_map, ModelConfig())
    fine_tune(model, train, validation, tokenizer.pad_token_id, config, tmp_path / "ckpt", {"snapshot_id": "A"},
              progress=False)
    kept = list_checkpoints(tmp_path / "ckpt")
    assert [p.name for p in kept] == ["step-00000004", "step-00000006"]
    with pytest.raises(CheckpointMismatch, match="snapshot_id"):
        fine_tune(load_model(tiny_model_dir, label_map, ModelConfig()), train, validation, tokenizer.pad_token_id,
                  config, tmp_path / "other", {"snapshot_id": "B"}, resume_from=kept[-1], progress=False)


def test_lora_trains_only_adapters(tiny_model_dir, tiny_data, tmp_path):
    tokenizer, label_map, train, validation = tiny_data
    model = load_model(tiny_model_dir, label_map, ModelConfig(method="lora", lora_r=4))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert trainable < total / 2
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    result = fine_tune(model, train, validation, tokenizer.pad_token_id, TrainingConfig(max_steps=3, batch_size=16),
                       tmp_path / "ckpt", {}, progress=False)
    assert result.steps == 3
    for name, param in model.named_parameters():
        if name in frozen_before:
            assert torch.equal(param.detach(), frozen_before[name])


def test_tokenize_cache_hit(tiny_model_dir, tmp_path):
    from pipeline.demo import generate_demo_rows

    tokenizer = load_tokenizer(tiny_model_dir)
    frame = generate_demo_rows(50)
    label_map = build_label_map(frame["label"])
    first = tokenize_split(frame, tokenizer, label_map, 32, tmp_path)
    second = tokenize_split(frame, tokenizer, label_map, 32, tmp_path)
    assert not first.from_cache and second.from_cache
    assert all((a == b).all() for a, b in zip(first.input_ids, second.input_ids))
    third = tokenize_split(frame, tokenizer, label_map, 16, tmp_path)
    assert not third.from_cache and max(third.lengths) <= 16
