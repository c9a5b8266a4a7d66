"""One short smoke test with the real packaged MiniLM (no flow, no registry)."""

import pytest

from pipeline.config import ModelConfig, TrainingConfig
from pipeline.data.demo import generate_demo_rows
from pipeline.training.devices import seed_everything
from pipeline.training.inference import predict_texts
from pipeline.training.loop import fine_tune
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
    result = fine_tune(
        model,
        train,
        None,
        tokenizer.pad_token_id,
        TrainingConfig(max_steps=4, batch_size=16),
        tmp_path,
        {},
        progress=False,
    )
    assert result.steps == 4 and result.step_log[-1]["train_loss"] > 0
    labels, scores = predict_texts(model, tokenizer, ["my parcel never arrived", "the app crashes"], 64)
    assert set(labels) <= set(label_map) and all(0 < s <= 1 for s in scores)


@pytest.mark.smoke
def test_packaged_minilm_beats_chance_clearly(tmp_path):
    """A short fine-tune on the demo tickets classifies unseen tickets far above chance (0.25)."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a busy machine makes 2 threads slower than 1 here
    try:
        train_frame = generate_demo_rows(192, seed=11, label_noise=0.0)
        test_frame = generate_demo_rows(96, seed=12, label_noise=0.0, exclude=set(train_frame["text"]))
        tokenizer = load_tokenizer("packaged:all-minilm-l6-v2")
        label_map = build_label_map(train_frame["label"])
        train = tokenize_split(train_frame, tokenizer, label_map, 64, None)
        seed_everything(0)
        model = load_model("packaged:all-minilm-l6-v2", label_map, ModelConfig())
        assert model.config.pipeline_pooling == "pooler"  # the default head
        assert (
            load_model("packaged:all-minilm-l6-v2", label_map, ModelConfig(pooling="auto")).config.pipeline_pooling
            == "mean"
        )  # auto reads the checkpoint's sentence-transformers pooling
        fine_tune(
            model,
            train,
            None,
            tokenizer.pad_token_id,
            TrainingConfig(epochs=1, batch_size=16),
            tmp_path,
            {},
            progress=False,
        )
        predicted, _ = predict_texts(model, tokenizer, test_frame["text"].tolist(), 64)
    finally:
        torch.set_num_threads(threads)
    accuracy = (test_frame["label"].to_numpy() == predicted).mean()
    assert accuracy >= 0.8, accuracy
