"""One short smoke test with the real packaged MiniLM (no flow, no registry)."""

import pytest

from pipeline.config import ModelConfig, TrainingConfig
from pipeline.data.demo import generate_demo_rows
from pipeline.training.inference import predict_texts
from pipeline.training.loop import fine_tune, seed_everything
from pipeline.training.modeling import build_label_map, load_model, load_tokenizer
from pipeline.training.tokenization import tokenize_split


@pytest.mark.smoke
def test_packaged_minilm_fine_tunes_a_few_steps(tmp_path):
    frame = generate_demo_rows(96, seed=5)
    tokenizer = load_tokenizer("packaged:all-minilm-l6-v2")
    label_map = build_label_map(frame["label"])
    train = tokenize_split(frame, tokenizer, label_map, 64, None)
    seed_everything(0)
    model = load_model("packaged:all-minilm-l6-v2", label_map, ModelConfig())
    assert sum(p.numel() for p in model.parameters()) > 20_000_000
    result = fine_tune(model, train, None, tokenizer.pad_token_id, TrainingConfig(max_steps=4, batch_size=16),
                       tmp_path, {}, progress=False)
    assert result.steps == 4 and result.step_log[-1]["train_loss"] > 0
    labels, scores = predict_texts(model, tokenizer, ["my parcel never arrived", "the app crashes"], 64)
    assert set(labels) <= set(label_map) and all(0 < s <= 1 for s in scores)
