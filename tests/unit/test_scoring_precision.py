"""Scoring precision: bf16 where the hardware computes it natively, fp32 otherwise or on request."""

import numpy as np
import pytest

from pipeline.scoring import model as scoring_model
from pipeline.training import inference


@pytest.fixture(scope="module")
def scoring(tiny_model_dir, tmp_path_factory):
    import torch

    from pipeline.config import ModelConfig
    from pipeline.scoring.model import ModelRef, load_model_folder
    from pipeline.training.modeling import load_model, load_tokenizer, save_model

    torch.manual_seed(0)
    folder = save_model(
        load_model(tiny_model_dir, {"neg": 0, "pos": 1, "mixed": 2}, ModelConfig()),
        load_tokenizer(tiny_model_dir),
        tmp_path_factory.mktemp("model") / "model",
    )
    return load_model_folder(folder, ModelRef("m", "1", None, "local"), device="cpu")


def probabilities(scoring, precision):
    from pipeline.scoring.scorer import tokenize_for_scoring

    scoring.precision = precision
    texts = [f"text number {i} " * (1 + i % 7) for i in range(40)]
    ids, _ = tokenize_for_scoring(scoring.tokenizer, texts, scoring.max_length)
    return scoring_model.predict_probabilities(scoring, ids, 8)


def test_bf16_on_cpu_computes_in_bf16_and_stays_close_to_fp32(scoring):
    fp32, again, bf16 = (probabilities(scoring, p) for p in ("fp32", "fp32", "bf16"))
    assert np.array_equal(fp32, again)
    difference = np.abs(fp32 - bf16).max()
    assert 0 < difference < 0.05, difference  # bf16 really ran (results differ), and only by rounding
    assert scoring_model.compute_precision(scoring) == "bf16"


def test_a_model_loaded_outside_scoring_computes_as_evaluation_does(scoring):
    from pipeline.scoring.model import ScoringModel

    assert ScoringModel.__dataclass_fields__["precision"].default == "training"
    assert scoring_model.precision_flags("training") == (True, False)  # bf16 on CUDA, fp32 on CPU
    assert np.array_equal(probabilities(scoring, "training"), probabilities(scoring, "fp32"))


def test_auto_uses_bf16_on_cpu_only_where_it_is_native(scoring, monkeypatch):
    fp32, bf16 = probabilities(scoring, "fp32"), probabilities(scoring, "bf16")
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    assert np.array_equal(probabilities(scoring, "auto"), fp32)
    assert scoring_model.compute_precision(scoring) == "fp32"
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    assert np.array_equal(probabilities(scoring, "auto"), bf16)
    assert scoring_model.compute_precision(scoring) == "bf16"


@pytest.mark.parametrize(
    "flags, native",
    [("fpu avx2 avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True), ("fpu avx2 avx512f", False)],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert inference.cpu_has_native_bf16.__wrapped__(str(cpuinfo)) is native
    assert inference.cpu_has_native_bf16.__wrapped__(str(tmp_path / "missing")) is False
