import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig, TrainingConfig
from pipeline.training.batching import collate, epoch_batches, evaluation_batches, pad_batch
from pipeline.training.checkpoints import (
    CheckpointMismatch,
    CheckpointWriter,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from pipeline.training.devices import seed_everything
from pipeline.training.loop import fine_tune
from pipeline.training.modeling import build_label_map, load_model, load_tokenizer, save_model
from pipeline.training.optim import build_optimizer, build_scheduler, class_weight_tensor, clip_gradients
from pipeline.training.planning import plan_steps
from pipeline.training.tokenization import tokenize_split


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


def test_epoch_batches_keep_the_last_short_batch_and_shuffle_batch_order():
    lengths = np.arange(70)
    batches = epoch_batches(lengths, 8, seed=0, epoch=0, bucket_batches=100)
    assert sorted(len(b) for b in batches) == [6] + [8] * 8
    first_lengths = [int(lengths[b].max()) for b in batches]
    assert first_lengths != sorted(first_lengths, reverse=True)  # batches of one sorted bucket, in random order


def test_pad_and_collate():
    ids, mask = pad_batch([np.array([1, 2, 3]), np.array([4])], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == mask.dtype == torch.int64
    batch = collate([np.array([5]), np.array([6, 7])], np.array([1, 0]), np.array([1, 0]), 0)
    assert batch["labels"].tolist() == [0, 1]
    assert batch["input_ids"].tolist() == [[6, 7], [5, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]


def test_evaluation_batches_sort_by_length_and_cover_all():
    lengths = np.array([3, 9, 1, 7, 5])
    batches = evaluation_batches(lengths, 2)
    assert [b.tolist() for b in batches] == [[1, 3], [4, 0], [2]]


def test_plan_steps_with_accumulation_and_max_steps():
    assert plan_steps(100, TrainingConfig(batch_size=10, gradient_accumulation_steps=3, epochs=2)) == (4, 8, 2)
    assert plan_steps(100, TrainingConfig(batch_size=10, max_steps=25)) == (10, 25, 3)


def test_schedule_warms_up_over_the_configured_share_then_decays_to_zero():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, TrainingConfig(learning_rate=1.0, warmup_ratio=0.2), planned_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert lrs[:3] == [0.0, 0.5, 1.0]
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:]))
    assert scheduler.get_last_lr()[0] == 0.0


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)


def test_weight_decay_only_on_matrices_and_fused_adamw():
    model = _Tiny()
    optimizer = build_optimizer(model, TrainingConfig(weight_decay=0.1), torch.device("cpu"))
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and [p.shape for p in decayed["params"]] == [torch.Size([3, 4])]
    assert plain["weight_decay"] == 0.0 and len(plain["params"]) == 3  # linear bias, norm weight and bias
    assert optimizer.defaults["fused"]


def test_new_head_learns_faster_and_lora_keeps_the_rule(tiny_model_dir):
    config = TrainingConfig(learning_rate=1e-4, head_learning_rate_factor=10)
    for method in ("full", "lora"):
        model = load_model(tiny_model_dir, {"a": 0, "b": 1, "c": 2}, ModelConfig(method=method))
        assert model.pipeline_new_parameters == {"classifier.weight", "classifier.bias"}
        optimizer = build_optimizer(model, config, torch.device("cpu"))
        head = {id(p) for n, p in model.named_parameters() if "classifier" in n and p.requires_grad}
        for group in optimizer.param_groups:
            in_head = {id(p) for p in group["params"]} <= head
            assert group["lr"] == pytest.approx(1e-3 if in_head else 1e-4)
        assert sum(len(g["params"]) for g in optimizer.param_groups if g["lr"] > 2e-4) == 2


def test_clip_gradients_limits_the_global_norm():
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(4))]
    params[0].grad = torch.tensor([3.0, 0.0, 0.0])
    params[1].grad = torch.tensor([0.0, 4.0, 0.0, 0.0])
    norm = clip_gradients(params, 1.0, torch.device("cpu"))
    assert float(norm) == pytest.approx(5.0)
    assert float(torch.cat([p.grad for p in params]).norm()) == pytest.approx(1.0)
    before = [p.grad.clone() for p in params]
    clip_gradients(params, 10.0, torch.device("cpu"))
    assert all(torch.equal(a, p.grad) for a, p in zip(before, params))


def test_class_weights_are_inverse_frequency():
    weights = class_weight_tensor(np.array([0, 0, 0, 1]), 3)
    assert weights.tolist() == pytest.approx([4 / 9, 4 / 3, 0.0])


def test_checkpoint_round_trip_restores_state_and_rng(tmp_path):
    model = _Tiny()
    torch.manual_seed(7)
    state = {"model": model.state_dict(), "step": 5, "counts": np.arange(4)}
    path = save_checkpoint(tmp_path, 5, {"snapshot_id": "A"}, state, keep=2)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    loaded = load_checkpoint(path, {"snapshot_id": "A"})
    assert torch.equal(torch.rand(3), expected_next)  # the RNG continues where the checkpoint left it
    assert loaded["step"] == 5 and loaded["counts"].tolist() == [0, 1, 2, 3]
    assert all(torch.equal(loaded["model"][k], v) for k, v in model.state_dict().items())
    (tmp_path / ".partial-xyz").mkdir()  # a write killed half-way is never listed
    (tmp_path / "step-00000009").mkdir()
    assert list_checkpoints(tmp_path) == [path]
    with pytest.raises(CheckpointMismatch, match="snapshot_id: checkpoint has 'A', this run has 'B'"):
        load_checkpoint(path, {"snapshot_id": "B"})


def test_background_checkpoint_writer_snapshots_state_at_save_time(tmp_path):
    weights = torch.zeros(3)
    counts = np.zeros(2, dtype=np.int64)
    writer = CheckpointWriter(tmp_path, {"k": 1}, keep=5)
    torch.manual_seed(3)
    writer.save(1, {"weights": weights, "counts": counts, "history": [{"epoch": 1}]})
    expected_next = torch.rand(2)
    weights += 5  # training goes on while the writer works
    counts += 1
    writer.save(2, {"weights": weights, "counts": counts})
    writer.wait()
    first, second = list_checkpoints(tmp_path)
    state = load_checkpoint(first, {"k": 1})
    assert state["weights"].tolist() == [0, 0, 0] and state["counts"].tolist() == [0, 0]
    assert torch.equal(torch.rand(2), expected_next)  # RNG captured when save() was called
    assert load_checkpoint(second, {"k": 1})["weights"].tolist() == [5, 5, 5]
    (tmp_path / "step-00000003").write_text("a file where the folder should go")
    writer.save(3, {"weights": weights})
    with pytest.raises(OSError):
        writer.wait()


@pytest.fixture(scope="module")
def tiny_data(tiny_model_dir):

    from pipeline.data.demo import generate_demo_rows

    tokenizer = load_tokenizer(tiny_model_dir)
    frame = generate_demo_rows(160, seed=3)
    label_map = build_label_map(frame["label"])
    train = tokenize_split(frame.iloc[:128], tokenizer, label_map, 64, None)
    validation = tokenize_split(frame.iloc[128:], tokenizer, label_map, 64, None)
    return tokenizer, label_map, train, validation


def train_tiny(tiny_model_dir, tiny_data, tmp_path, **overrides):
    tokenizer, label_map, train, validation = tiny_data
    config = TrainingConfig(
        **{
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 1e-3,
            "checkpoint_steps": 3,
            "early_stopping_patience": None,
            **overrides,
        }
    )
    seed_everything(config.seed)
    model = load_model(tiny_model_dir, label_map, ModelConfig(method=overrides.pop("method", "full")))
    return fine_tune(
        model, train, validation, tokenizer.pad_token_id, config, tmp_path / "ckpt", {"run": "tiny"}, progress=False
    )


def test_every_example_seen_once_per_epoch(tiny_model_dir, tiny_data, tmp_path):
    result = train_tiny(tiny_model_dir, tiny_data, tmp_path)
    assert result.steps == result.planned_steps == 16
    assert (result.sample_counts == 2).all()
    assert len(result.history) == 2 and "val_macro_f1" in result.history[-1]


def test_progress_bar_shows_samples_per_second_and_time_left(tiny_model_dir, tiny_data, tmp_path, capsys):
    tokenizer, label_map, train, validation = tiny_data
    model = load_model(tiny_model_dir, label_map, ModelConfig())
    fine_tune(
        model,
        train,
        None,
        tokenizer.pad_token_id,
        TrainingConfig(max_steps=4, batch_size=16),
        tmp_path,
        {},
        progress=True,
    )
    err = capsys.readouterr().err
    assert "fine-tune" in err and "4/4" in err and "samples_per_s=" in err
    assert "<00:00" in err  # tqdm's [elapsed<remaining] time left


def test_cpu_training_is_deterministic(tiny_model_dir, tiny_data, tmp_path):
    a = train_tiny(tiny_model_dir, tiny_data, tmp_path / "a")
    b = train_tiny(tiny_model_dir, tiny_data, tmp_path / "b")
    assert a.history == b.history
    assert a.step_log == b.step_log
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    c = train_tiny(tiny_model_dir, tiny_data, tmp_path / "c", seed=7)
    assert not torch.equal(next(iter(a.model.parameters())), next(iter(c.model.parameters())))


def test_resuming_from_a_mid_epoch_checkpoint_equals_the_uninterrupted_run(tiny_model_dir, tiny_data, tmp_path):
    full = train_tiny(tiny_model_dir, tiny_data, tmp_path / "full", keep_checkpoints=100)
    kept = list_checkpoints(tmp_path / "full" / "ckpt")
    middle = next(p for p in kept if p.name == "step-00000006")  # epoch 1, batch 6 of 8
    tokenizer, label_map, train, validation = tiny_data
    seen = []
    seed_everything(123)  # whatever the process did before, the checkpoint's RNG states take over
    model = load_model(tiny_model_dir, label_map, ModelConfig())
    config = TrainingConfig(
        epochs=2, batch_size=16, learning_rate=1e-3, checkpoint_steps=3, early_stopping_patience=None
    )
    resumed = fine_tune(
        model,
        train,
        validation,
        tokenizer.pad_token_id,
        config,
        tmp_path / "other",
        {"run": "tiny"},
        resume_from=middle,
        progress=False,
        on_resume=seen.append,
    )
    assert resumed.resumed_from_step == 6 and seen[0]["step"] == 6 and seen[0]["next_batch"] == 6
    assert resumed.steps == full.steps == 16
    assert (resumed.sample_counts == 2).all()
    assert resumed.history == full.history and resumed.step_log == full.step_log
    assert all(torch.equal(x, y) for x, y in zip(full.model.state_dict().values(), resumed.model.state_dict().values()))


def test_checkpoints_are_pruned_and_refused_for_other_fingerprints(tiny_model_dir, tiny_data, tmp_path):
    tokenizer, label_map, train, validation = tiny_data
    config = TrainingConfig(epochs=1, batch_size=16, checkpoint_steps=2, keep_checkpoints=2)
    model = load_model(tiny_model_dir, label_map, ModelConfig())
    fine_tune(
        model,
        train,
        validation,
        tokenizer.pad_token_id,
        config,
        tmp_path / "ckpt",
        {"snapshot_id": "A"},
        progress=False,
    )
    kept = list_checkpoints(tmp_path / "ckpt")
    assert [p.name for p in kept] == ["step-00000004", "step-00000006"]
    with pytest.raises(CheckpointMismatch, match="snapshot_id"):
        fine_tune(
            load_model(tiny_model_dir, label_map, ModelConfig()),
            train,
            validation,
            tokenizer.pad_token_id,
            config,
            tmp_path / "other",
            {"snapshot_id": "B"},
            resume_from=kept[-1],
            progress=False,
        )


def test_lora_trains_only_adapters_and_saves_a_plain_merged_model(tiny_model_dir, tiny_data, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from pipeline.training.inference import predict_proba

    tokenizer, label_map, train, validation = tiny_data
    model = load_model(tiny_model_dir, label_map, ModelConfig(method="lora", lora_r=4))
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in trainable.values()) < total / 2
    assert any("lora_" in n for n in trainable) and any("classifier" in n for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    result = fine_tune(
        model,
        train,
        validation,
        tokenizer.pad_token_id,
        TrainingConfig(max_steps=3, batch_size=16, learning_rate=1e-2),
        tmp_path / "ckpt",
        {},
        progress=False,
    )
    assert result.steps == 3
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n].detach().cpu(), p.cpu()) for n, p in frozen_before.items())
    assert any(not torch.equal(params[n].detach(), p) for n, p in trainable.items() if "lora_B" in n)
    expected = predict_proba(model, validation.input_ids, tokenizer.pad_token_id, 64, torch.device("cpu"))
    saved = save_model(model, tokenizer, tmp_path / "merged")
    plain = AutoModelForSequenceClassification.from_pretrained(saved)
    assert not any("lora" in n for n, _ in plain.named_parameters())
    got = predict_proba(plain, validation.input_ids, tokenizer.pad_token_id, 64, torch.device("cpu"))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_half_precision_checkpoints_load_as_fp32_and_packaged_alias_honours_env(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    from pipeline.training.modeling import PACKAGED_MODEL_ENV, resolve_model_path

    half = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).half()
    half.save_pretrained(tmp_path / "half")
    load_tokenizer(tiny_model_dir).save_pretrained(tmp_path / "half")
    model = load_model(str(tmp_path / "half"), {"a": 0, "b": 1}, ModelConfig())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    monkeypatch.setenv(PACKAGED_MODEL_ENV, str(tmp_path / "half"))
    assert resolve_model_path("packaged:all-minilm-l6-v2") == str(tmp_path / "half")
    assert resolve_model_path("org/other-model") == "org/other-model"


def test_tokenize_cache_hit(tiny_model_dir, tmp_path):
    from pipeline.data.demo import generate_demo_rows

    tokenizer = load_tokenizer(tiny_model_dir)
    frame = generate_demo_rows(50)
    label_map = build_label_map(frame["label"])
    first = tokenize_split(frame, tokenizer, label_map, 32, tmp_path)
    second = tokenize_split(frame, tokenizer, label_map, 32, tmp_path)
    assert not first.from_cache and second.from_cache
    assert all((a == b).all() for a, b in zip(first.input_ids, second.input_ids))
    third = tokenize_split(frame, tokenizer, label_map, 16, tmp_path)
    assert not third.from_cache and max(third.lengths) <= 16
