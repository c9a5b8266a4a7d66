"""Token-budget batches: every example once per epoch, no batch over the budget, reproducible order."""

import numpy as np
import pytest

from pipeline.config import ModelConfig, TrainingConfig
from pipeline.training.batching import token_budget_batches
from pipeline.training.loop import fine_tune
from pipeline.training.planning import build_epoch_batches, plan_steps, plan_token_budget_steps


def test_token_budget_batches_cover_each_index_once_within_the_budget():
    lengths = np.random.default_rng(0).integers(3, 120, size=2000)
    lengths[7] = 900  # longer than the budget: a batch of its own
    batches = token_budget_batches(lengths, 512, seed=1, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(2000))
    for batch in batches:
        assert len(batch) * lengths[batch].max() <= 512 or len(batch) == 1
    assert [7] in [b.tolist() for b in batches]
    short = [len(b) for b in batches if lengths[b].max() < 20]
    long = [len(b) for b in batches if lengths[b].max() > 100]
    assert min(short) > max(long)  # short texts travel in larger batches
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert lengths.sum() / padded > 0.85  # little padding: batches are length-grouped
    assert all(len(b) <= 8 for b in token_budget_batches(lengths, 512, seed=1, epoch=0, max_rows=8))


def test_token_budget_order_depends_only_on_seed_and_epoch():
    lengths = np.random.default_rng(1).integers(3, 60, size=300)
    a, b = token_budget_batches(lengths, 256, 3, 2), token_budget_batches(lengths, 256, 3, 2)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    c = token_budget_batches(lengths, 256, 3, 3)
    assert [x.tolist() for x in a] != [x.tolist() for x in c]
    with pytest.raises(ValueError, match="max_tokens"):
        token_budget_batches(lengths, 0, 3, 2)


def test_fine_tune_by_token_budget_sees_every_example_once_per_epoch(tiny_model_dir, tmp_path):
    from pipeline.data.demo import generate_demo_rows
    from pipeline.training.modeling import build_label_map, load_model, load_tokenizer
    from pipeline.training.tokenization import tokenize_split

    tokenizer = load_tokenizer(tiny_model_dir)
    frame = generate_demo_rows(120, seed=4)
    label_map = build_label_map(frame["label"])
    train = tokenize_split(frame, tokenizer, label_map, 64, None)
    config = TrainingConfig(epochs=2, max_batch_tokens=256, checkpoint_steps=10_000, early_stopping_patience=None)
    epochs = [len(build_epoch_batches(train.lengths, config, e)) for e in range(2)]
    assert plan_token_budget_steps(train.lengths, config) == (epochs[0], sum(epochs), 2)
    assert epochs[0] != plan_steps(len(train), config)[0]  # not the row count's number of batches
    model = load_model(tiny_model_dir, label_map, ModelConfig())
    result = fine_tune(model, train, None, tokenizer.pad_token_id, config, tmp_path, {}, progress=False)
    assert (result.sample_counts == 2).all()
    assert result.steps == result.planned_steps == sum(epochs)
