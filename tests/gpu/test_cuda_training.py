"""The training loop on CUDA (bf16 autocast, TF32, fused AdamW, pinned copies, torch.compile), with a tiny
model. Skipped where no CUDA device is present; run by bench/gpu/run_gpu.sh on the GPU machine."""

import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig, TrainingConfig
from pipeline.training.checkpoints import list_checkpoints
from pipeline.training.devices import seed_everything
from pipeline.training.loop import fine_tune
from pipeline.training.modeling import build_label_map, load_model, load_tokenizer
from pipeline.training.tokenization import tokenize_split

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def tiny_data(tiny_model_dir):
    from pipeline.data.demo import generate_demo_rows

    tokenizer = load_tokenizer(tiny_model_dir)
    frame = generate_demo_rows(200, seed=3)
    label_map = build_label_map(frame["label"])
    train = tokenize_split(frame.iloc[:160], tokenizer, label_map, 64, None)
    validation = tokenize_split(frame.iloc[160:], tokenizer, label_map, 64, None)
    return tokenizer, label_map, train, validation


def train_cuda(tiny_model_dir, tiny_data, folder, resume_from=None, **overrides):
    tokenizer, label_map, train, validation = tiny_data
    config = TrainingConfig(
        **{
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 1e-3,
            "checkpoint_steps": 4,
            "keep_checkpoints": 10,
            "early_stopping_patience": None,
            "device": "cuda",
            **overrides,
        }
    )
    seed_everything(config.seed)
    model = load_model(tiny_model_dir, label_map, ModelConfig())
    return fine_tune(
        model,
        train,
        validation,
        tokenizer.pad_token_id,
        config,
        folder,
        {"run": "cuda"},
        resume_from=resume_from,
        progress=False,
    )


def test_cuda_bf16_training_learns_and_counts_every_example(tiny_model_dir, tiny_data, tmp_path):
    result = train_cuda(tiny_model_dir, tiny_data, tmp_path / "ckpt", epochs=4)
    assert result.device.startswith("cuda") and next(result.model.parameters()).device.type == "cuda"
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}  # autocast, fp32 master weights
    assert result.steps == result.planned_steps == 40 and (result.sample_counts == 4).all()
    losses = [r["train_loss"] for r in result.step_log]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert torch.backends.cuda.matmul.allow_tf32


def test_cuda_checkpoint_resumes_on_cuda_and_on_cpu(tiny_model_dir, tiny_data, tmp_path):
    train_cuda(tiny_model_dir, tiny_data, tmp_path / "ckpt")
    middle = next(p for p in list_checkpoints(tmp_path / "ckpt") if p.name == "step-00000004")
    for device in ("cuda", "cpu"):
        resumed = train_cuda(tiny_model_dir, tiny_data, tmp_path / device, resume_from=middle, device=device)
        assert resumed.resumed_from_step == 4 and resumed.steps == 20
        assert (resumed.sample_counts == 2).all() and resumed.device.startswith(device)


def test_cuda_bf16_predictions_match_fp32(tiny_model_dir, tiny_data):
    from pipeline.training.inference import predict_proba

    tokenizer, label_map, _, validation = tiny_data
    model = load_model(tiny_model_dir, label_map, ModelConfig()).cuda()
    device = torch.device("cuda")
    fp32 = predict_proba(model, validation.input_ids, tokenizer.pad_token_id, 64, device, bf16=False)
    bf16 = predict_proba(model, validation.input_ids, tokenizer.pad_token_id, 64, device, bf16=True)
    np.testing.assert_allclose(bf16, fp32, atol=0.02)
    assert np.allclose(fp32.sum(axis=1), 1.0, atol=1e-5)


def test_cuda_lora_training(tiny_model_dir, tiny_data, tmp_path):
    tokenizer, label_map, train, validation = tiny_data
    model = load_model(tiny_model_dir, label_map, ModelConfig(method="lora", lora_r=4))
    config = TrainingConfig(max_steps=5, batch_size=16, learning_rate=1e-3, device="cuda")
    result = fine_tune(model, train, validation, tokenizer.pad_token_id, config, tmp_path / "ckpt", {}, progress=False)
    assert result.steps == 5 and result.device.startswith("cuda")


def test_cuda_torch_compile_trains(tiny_model_dir, tiny_data, tmp_path):
    result = train_cuda(tiny_model_dir, tiny_data, tmp_path / "ckpt", compile=True, max_steps=6)
    assert result.steps == 6 and all(np.isfinite([r["train_loss"] for r in result.step_log]))
