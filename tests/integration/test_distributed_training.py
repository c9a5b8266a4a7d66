"""Data-parallel fine-tuning with 2 gloo processes under torchrun, on a tiny dropout-free BERT (and LoRA).

Two ranks with the same global batch end with the weights of one process (within 1e-4: only the order of
the floating-point sums differs), every example is seen exactly ``epochs`` times, a rank killed by SIGKILL
fails the step naming the rank and the same job then resumes to exact counts, and a rank that raises fails
the step with its message. The faults come from ``distributed_faults.py`` loaded as ``sitecustomize``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.training.tokenization import TokenizedSplit

pytestmark = pytest.mark.integration
WEIGHT_TOLERANCE = 1e-4
EPOCHS = 3


@pytest.fixture(scope="module")
def dropout_free_model(tmp_path_factory, tiny_model_dir) -> str:
    """The tiny BERT without dropout, so two processes and one draw the same computation."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    config = BertConfig.from_pretrained(tiny_model_dir)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = config.classifier_dropout = 0.0
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizerFast.from_pretrained(tiny_model_dir).save_pretrained(folder)
    return str(folder)


def toy_split(count: int, seed: int) -> TokenizedSplit:
    """A separable task: class 1 texts hold token 2000, class 0 texts token 3000; lengths vary; 2:1 imbalance."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(count) < 1 / 3).astype(np.int64)
    ids = [
        np.array([101, *([2000 if y else 3000] * 4), *rng.integers(5000, 5100, size=rng.integers(1, 8)), 102])
        for y in labels
    ]
    return TokenizedSplit(input_ids=ids, labels=labels, cache_key=f"toy-{count}-{seed}")


def training_config(workspace: Path, model_dir: str, **training):
    settings = {
        "epochs": EPOCHS,
        "batch_size": 7,
        "gradient_accumulation_steps": 2,
        "learning_rate": 0.01,
        "class_weights": True,
        "early_stopping_patience": None,
        "checkpoint_steps": 2,
        "seed": 7,
        "num_processes": 2,
        "collective_timeout_s": 60,
        **training,
    }
    return load_config(
        overrides=[
            f"workspace={workspace}",
            f"model.name_or_path={model_dir}",
            "model.max_length=64",
            *[f"training.{k}={'null' if v is None else v}" for k, v in settings.items()],
        ]
    )


def job_for(config, model_dir: str, out: Path, train: TokenizedSplit, validation: TokenizedSplit) -> dict:
    return {
        "config": config.model_dump(mode="json"),
        "source": model_dir,
        "label_map": {"neg": 0, "pos": 1},
        "train": train,
        "validation": validation,
        "pad_id": 0,
        "checkpoint_dir": str(out / "checkpoints"),
        "fingerprint": {"test": "distributed"},
        "resume_from": None,
        "tracking_uri": None,
        "run_id": None,
        "tokenizer_dir": model_dir,
        "model_dir": str(out / "model"),
    }


def inject_fault(monkeypatch, tmp_path: Path, kind: str, rank: int, batch: int) -> None:
    folder = tmp_path / "faults"
    folder.mkdir()
    shutil.copy(Path(__file__).with_name("distributed_faults.py"), folder / "sitecustomize.py")
    monkeypatch.setenv("PYTHONPATH", str(folder))
    monkeypatch.setenv("FAULT_RANK", str(rank))
    monkeypatch.setenv("FAULT_AT_BATCH", str(batch))
    monkeypatch.setenv("FAULT_KIND", kind)


def test_two_ranks_match_one_process_and_see_every_example_epochs_times(tmp_path, dropout_free_model):
    import torch
    from transformers import AutoModelForSequenceClassification

    from pipeline.training.devices import seed_everything
    from pipeline.training.distributed import launch_fine_tune
    from pipeline.training.loop import fine_tune
    from pipeline.training.modeling import load_model

    train, validation = toy_split(97, 1), toy_split(21, 2)  # 7-row batches: uneven shares (4 and 3), 6-row last
    config = training_config(tmp_path / "ws", dropout_free_model)
    parallel = launch_fine_tune(
        config, tmp_path / "job", job_for(config, dropout_free_model, tmp_path, train, validation)
    )

    seed_everything(config.training.seed)
    single_model = load_model(dropout_free_model, {"neg": 0, "pos": 1}, config.model)
    single = fine_tune(
        single_model,
        train,
        validation,
        0,
        config.training,
        tmp_path / "single-checkpoints",
        {"test": "single"},
        progress=False,
    )

    assert parallel.world_size == 2 and single.world_size == 1
    assert parallel.steps == single.steps == parallel.planned_steps == EPOCHS * 7  # 14 batches, 2 per step
    assert parallel.sample_counts.tolist() == [EPOCHS] * len(train)
    assert single.sample_counts.tolist() == [EPOCHS] * len(train)
    assert parallel.history[-1]["val_accuracy"] >= 0.9, parallel.history  # it learns the toy task
    assert parallel.step_log[-1]["train_loss"] < 0.6  # from ln 2 = 0.69 at the start
    assert [h["val_accuracy"] for h in parallel.history] == [h["val_accuracy"] for h in single.history]
    assert abs(parallel.step_log[-1]["train_loss"] - single.step_log[-1]["train_loss"]) < 1e-4
    saved = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").state_dict()
    reference = single.model.state_dict()
    worst = max(float((saved[k].float() - reference[k].float()).abs().max()) for k in reference)
    assert worst < WEIGHT_TOLERANCE, f"largest weight difference {worst}"
    assert not torch.equal(
        saved["classifier.weight"],
        load_model(dropout_free_model, {"neg": 0, "pos": 1}, config.model).state_dict()["classifier.weight"],
    )


def test_sigkill_of_one_rank_fails_naming_it_then_resume_counts_exactly(tmp_path, monkeypatch, dropout_free_model):
    from pipeline.training.distributed import DistributedTrainingError, launch_fine_tune

    train, validation = toy_split(97, 3), toy_split(21, 4)
    config = training_config(
        tmp_path / "ws", dropout_free_model, epochs=2, batch_size=15, gradient_accumulation_steps=1
    )
    job = job_for(config, dropout_free_model, tmp_path, train, validation)
    inject_fault(monkeypatch, tmp_path, "kill", rank=1, batch=11)  # step 11 of 14; checkpoints every 2 steps
    with pytest.raises(DistributedTrainingError, match="rank 1 was killed by SIGKILL"):
        launch_fine_tune(config, tmp_path / "job", job)
    assert list((tmp_path / "checkpoints").glob("step-*")), "no checkpoint before the kill"
    assert not (tmp_path / "model").exists()

    monkeypatch.delenv("FAULT_RANK")
    resumed = launch_fine_tune(config, tmp_path / "job", job)
    assert resumed.resumed_from_step is not None and 2 <= resumed.resumed_from_step <= 10
    assert resumed.steps == resumed.planned_steps == 2 * 7  # 7 batches of 15 per epoch
    assert resumed.sample_counts.tolist() == [2] * len(train)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert (tmp_path / "model" / "config.json").exists()


def test_a_rank_that_raises_fails_the_step_with_its_message(tmp_path, monkeypatch, dropout_free_model):
    from pipeline.training.distributed import DistributedTrainingError, launch_fine_tune

    config = training_config(tmp_path / "ws", dropout_free_model, epochs=1)
    inject_fault(monkeypatch, tmp_path, "raise", rank=1, batch=2)
    job = job_for(config, dropout_free_model, tmp_path, toy_split(60, 5), toy_split(10, 6))
    with pytest.raises(DistributedTrainingError) as failure:
        launch_fine_tune(config, tmp_path / "job", job)
    assert "rank 1 (host" in str(failure.value)
    assert "ValueError: injected fault on rank 1 at batch 2" in str(failure.value)
    assert (tmp_path / "job" / "torchrun.log").exists()


def test_lora_adapters_train_on_two_ranks_and_are_merged_into_the_saved_model(tmp_path, dropout_free_model):
    from safetensors.torch import load_file

    from pipeline.training.distributed import launch_fine_tune

    config = training_config(tmp_path / "ws", dropout_free_model, epochs=1, batch_size=15)
    config.model.method = "lora"
    result = launch_fine_tune(
        config, tmp_path / "job", job_for(config, dropout_free_model, tmp_path, toy_split(60, 7), toy_split(10, 8))
    )
    assert result.world_size == 2 and result.steps == 2  # 4 batches of 15, 2 per step
    assert result.sample_counts.tolist() == [1] * 60
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert not [k for k in saved if "lora" in k] and "classifier.weight" in saved


def test_pipeline_run_with_two_processes_registers_a_loadable_model(tmp_path, tiny_model_dir):
    """The user's command: `pipeline run --set training.num_processes=2 --json` on the demo data."""
    import json
    import os
    import subprocess
    import sys

    import mlflow

    from pipeline.data.demo import write_demo_files

    home = tmp_path / "ws"
    write_demo_files(home / "landing", (1, 2), rows_per_batch=1200)
    settings = [
        f"model.name_or_path={tiny_model_dir}",
        "model.max_length=64",
        "training.num_processes=2",
        "training.epochs=2",
        "training.learning_rate=0.001",
        "registry.model_name=dp-classifier",
    ]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PIPELINE_HOME": str(home), "PYTHONPATH": f"{root / 'src'}:{root}"}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "run", "--json", *[arg for item in settings for arg in ("--set", item)]],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert payload["status"] == "completed" and payload["training"]["world_size"] == 2
    assert payload["metrics"]["accuracy"] >= 0.8, payload["metrics"]  # four demo topics: it learns
    counts = np.load(home / "runs" / payload["run_id"] / "sample_counts.npy")
    assert set(counts.tolist()) == {2}
    mlflow.set_tracking_uri(payload["tracking_uri"])
    run = mlflow.MlflowClient().get_run(payload["run_id"])
    assert run.data.tags["world_size"] == "2" and "val_macro_f1" in run.data.metrics
    predictions = mlflow.pyfunc.load_model(f"models:/dp-classifier/{payload['model_version']}").predict(
        ["my parcel is late", "refund my invoice"]
    )
    assert len(predictions) == 2 and set(predictions["label"]) <= {"account", "billing", "shipping", "technical"}
