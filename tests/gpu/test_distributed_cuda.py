"""Data-parallel training on several GPUs (NCCL): N processes end with the weights of one GPU and count every
example exactly ``epochs`` times; with bf16 it still learns. Skipped with fewer than 2 CUDA devices; run by
bench/gpu/run_distributed.sh on a GPU machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import load_config
from pipeline.training.tokenization import TokenizedSplit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs at least 2 CUDA devices"),
]
WEIGHT_TOLERANCE = 1e-3  # TF32 matmuls and NCCL's reduction order


@pytest.fixture(scope="module")
def dropout_free_model(tmp_path_factory, tiny_model_dir) -> str:
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    config = BertConfig.from_pretrained(tiny_model_dir)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = config.classifier_dropout = 0.0
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizerFast.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return str(folder)


def toy_split(count: int, seed: int) -> TokenizedSplit:
    rng = np.random.default_rng(seed)
    labels = (rng.random(count) < 1 / 3).astype(np.int64)
    ids = [
        np.array([101, *([2000 if y else 3000] * 4), *rng.integers(5000, 5100, size=rng.integers(1, 8)), 102])
        for y in labels
    ]
    return TokenizedSplit(input_ids=ids, labels=labels, cache_key=f"toy-{count}-{seed}")


def train(tmp_path: Path, model_dir: str, processes: int, bf16: bool):
    from pipeline.training.distributed import launch_fine_tune

    config = load_config(
        overrides=[
            f"model.name_or_path={model_dir}",
            "training.epochs=3",
            "training.batch_size=16",
            "training.gradient_accumulation_steps=2",
            "training.learning_rate=0.01",
            "training.early_stopping_patience=null",
            "training.device=cuda",
            f"training.bf16={str(bf16).lower()}",
            f"training.num_processes={processes}",
            "training.collective_timeout_s=120",
        ]
    )
    out = tmp_path / f"p{processes}-{bf16}"
    job = {
        "config": config.model_dump(mode="json"),
        "source": model_dir,
        "label_map": {"neg": 0, "pos": 1},
        "train": toy_split(301, 1),
        "validation": toy_split(41, 2),
        "pad_id": 0,
        "checkpoint_dir": str(out / "ckpt"),
        "fingerprint": {"gpu": processes},
        "resume_from": None,
        "tracking_uri": None,
        "run_id": None,
        "tokenizer_dir": model_dir,
        "model_dir": str(out / "model"),
    }
    # one process goes through torchrun too, so both runs load, train and save the same way
    return launch_fine_tune(config, out / "job", job), out / "model"


def test_n_gpus_match_one_gpu_and_count_every_example(tmp_path, dropout_free_model):
    from transformers import AutoModelForSequenceClassification

    processes = min(torch.cuda.device_count(), 4)
    one, one_dir = train(tmp_path, dropout_free_model, 1, bf16=False)
    many, many_dir = train(tmp_path, dropout_free_model, processes, bf16=False)
    assert many.world_size == processes and many.steps == one.steps
    assert many.sample_counts.tolist() == one.sample_counts.tolist() == [3] * 301
    assert many.history[-1]["val_accuracy"] >= 0.9
    a = AutoModelForSequenceClassification.from_pretrained(one_dir).state_dict()
    b = AutoModelForSequenceClassification.from_pretrained(many_dir).state_dict()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < WEIGHT_TOLERANCE, f"largest weight difference {worst}"


def test_bf16_on_n_gpus_learns_and_counts_every_example(tmp_path, dropout_free_model):
    result, _ = train(tmp_path, dropout_free_model, torch.cuda.device_count(), bf16=True)
    assert result.device.startswith("cuda")
    assert result.sample_counts.tolist() == [3] * 301
    assert result.history[-1]["val_accuracy"] >= 0.9
