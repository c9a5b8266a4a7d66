"""MLflow "models from code" definition of the registered classifier.

MLflow copies this file next to the weights; loading the model runs it, so it imports nothing from the
pipeline package and works wherever transformers, torch and pandas are installed. Input: a list of
texts, or a DataFrame with a ``text`` column. Output: a DataFrame with ``label`` and ``score``.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

BATCH_SIZE = 64


def pool(hidden, mask, mode: str):
    """The head's input as ``pipeline.training.pooling`` computes it (this file imports nothing from it)."""
    if mode == "cls":
        return hidden[:, 0]
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values


def classify_logits(model, batch):
    """Logits with the pooling the model was trained with (its config's ``pipeline_pooling``)."""
    mode = getattr(model.config, "pipeline_pooling", None) or "pooler"
    if mode == "pooler":
        return model(**batch).logits
    hidden = model.base_model(**batch, return_dict=True).last_hidden_state
    return model.classifier(pool(hidden, batch["attention_mask"], mode))


class TextClassifierModel(PythonModel):
    def load_context(self, context):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(context.artifacts["model_dir"])
        meta = json.loads((folder / "pipeline.json").read_text()) if (folder / "pipeline.json").exists() else {}
        self.max_length = int(meta.get("max_length", 128))
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Label and score per text. MLflow's schema enforcement hands over a DataFrame (a list of texts
        becomes its one column); a DataFrame with a ``text`` column is read from that column."""
        import torch

        if isinstance(model_input, pd.DataFrame):
            column = "text" if "text" in model_input.columns else model_input.columns[0]
            texts = model_input[column].astype(str).tolist()
        elif isinstance(model_input, pd.Series):
            texts = model_input.astype(str).tolist()
        else:
            texts = [str(t) for t in model_input]
        labels, scores = [], []
        id2label = self.model.config.id2label
        with torch.inference_mode():
            for start in range(0, len(texts), BATCH_SIZE):
                batch = self.tokenizer(
                    texts[start : start + BATCH_SIZE],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                proba = torch.softmax(classify_logits(self.model, batch).float(), dim=-1)
                best = proba.max(dim=-1)
                labels += [str(id2label[int(i)]) for i in best.indices.cpu()]
                scores += best.values.cpu().tolist()
        return pd.DataFrame({"label": labels, "score": scores})


mlflow.models.set_model(TextClassifierModel())
