"""How the classification head reads the encoder: the pooling the checkpoint was trained with.

A sentence-transformers checkpoint (the packaged all-MiniLM-L6-v2 among them) was trained on the
**mean** of its token vectors (``1_Pooling/config.json``); its ``[CLS]`` pooler layer never was. A head on
that pooler starts from features the objective never shaped. So the pooling named in the checkpoint's
sentence-transformers config is used when present:

- ``mean``: mean of the token vectors under the attention mask;
- ``max``: element-wise maximum over the unmasked tokens;
- ``cls``: the raw ``[CLS]`` token vector (no pooler layer);
- ``pooler``: the architecture's own head (``[CLS]`` through its pooler), kept for checkpoints trained so.

The mode is stored in the saved ``config.json`` as ``pipeline_pooling``; ``apply_pooling(model)`` rebinds
a loaded model's forward to it, so every loader (training, evaluation, the registered pyfunc, a warm
start) predicts with the head it was trained with. Heads need a linear ``classifier`` on the hidden size
and a ``dropout`` (BERT, MiniLM, ELECTRA-style models); other architectures keep their own head.
"""

from __future__ import annotations

import json
import logging
import types
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

POOLING_MODES = ("pooler", "cls", "mean", "max")
CONFIG_KEY = "pipeline_pooling"


def read_pooling(folder: str | Path) -> str | None:
    """The pooling of a sentence-transformers checkpoint folder ('mean', 'cls' or 'max'), else None.

    Reads ``modules.json`` to find the Pooling module (default ``1_Pooling``) and its ``config.json``.
    ``mean_sqrt_len`` counts as mean (the direction is the same; the head's scale absorbs the rest).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    pooling_dir = folder / "1_Pooling"
    modules = folder / "modules.json"
    if modules.exists():
        for module in json.loads(modules.read_text()):
            if str(module.get("type", "")).endswith("Pooling"):
                pooling_dir = folder / module.get("path", "1_Pooling")
    config_file = pooling_dir / "config.json"
    if not config_file.exists():
        return None
    config = json.loads(config_file.read_text())
    if config.get("pooling_mode_mean_tokens") or config.get("pooling_mode_mean_sqrt_len_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    if config.get("pooling_mode_max_tokens"):
        return "max"
    return None


def choose_pooling(folder: str | Path, model_config, requested: str = "auto") -> str:
    """The pooling to train with. A model this pipeline saved (a warm start from the champion) keeps its own:
    its head was trained on it. Otherwise ``requested``, where 'auto' takes the checkpoint's
    sentence-transformers pooling, else the architecture's pooler head."""
    saved = getattr(model_config, CONFIG_KEY, None)
    if saved in POOLING_MODES:
        if requested not in ("auto", saved):
            logger.info("%s keeps the pooling it was trained with (%s), not %s", folder, saved, requested)
        return saved
    if requested != "auto":
        return requested
    return read_pooling(folder) or "pooler"


def pool_hidden_states(hidden: torch.Tensor, attention_mask: torch.Tensor | None, mode: str) -> torch.Tensor:
    """(batch, tokens, width) -> (batch, width) by ``mode`` ('cls', 'mean' or 'max'), padding excluded."""
    if mode == "cls":
        return hidden[:, 0]
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    raise ValueError(f"unknown pooling {mode!r}; choose from {POOLING_MODES}")


def _pooled_forward(
    self,
    input_ids=None,
    attention_mask=None,
    token_type_ids=None,
    position_ids=None,
    inputs_embeds=None,
    labels=None,
    **kwargs,
):
    from transformers.modeling_outputs import SequenceClassifierOutput

    kwargs.pop("return_dict", None)
    outputs = self.base_model(
        input_ids,
        attention_mask=attention_mask,
        token_type_ids=token_type_ids,
        position_ids=position_ids,
        inputs_embeds=inputs_embeds,
        return_dict=True,
        **kwargs,
    )
    pooled = pool_hidden_states(outputs.last_hidden_state, attention_mask, self.config.pipeline_pooling)
    logits = self.classifier(self.dropout(pooled))
    loss = torch.nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
    return SequenceClassifierOutput(loss=loss, logits=logits)


def supports_pooling(model) -> bool:
    classifier = getattr(model, "classifier", None)
    return (
        isinstance(classifier, torch.nn.Linear)
        and isinstance(getattr(model, "dropout", None), torch.nn.Module)
        and classifier.in_features == getattr(model.config, "hidden_size", None)
    )


def apply_pooling(model, mode: str | None = None):
    """Make ``model`` classify from ``mode`` (default: its config's ``pipeline_pooling``); returns the model.

    'pooler' (or no mode) leaves the architecture's head. An architecture without a plain linear head
    keeps its own head and records 'pooler', with a warning.
    """
    mode = mode or getattr(model.config, CONFIG_KEY, None) or "pooler"
    if mode not in POOLING_MODES:
        raise ValueError(f"unknown pooling {mode!r}; choose from {POOLING_MODES}")
    if mode != "pooler" and not supports_pooling(model):
        logger.warning(
            "%s has no linear classifier on its hidden states: keeping its own head instead of %s pooling",
            type(model).__name__,
            mode,
        )
        mode = "pooler"
    model.config.pipeline_pooling = mode
    if mode == "pooler":
        model.__dict__.pop("forward", None)
    else:
        model.forward = types.MethodType(_pooled_forward, model)
    return model


def load_classifier(folder: str | Path, **kwargs):
    """A saved sequence classifier with the head it was trained with (``AutoModelForSequenceClassification``
    would silently use the ``[CLS]`` pooler instead)."""
    from transformers import AutoModelForSequenceClassification

    return apply_pooling(AutoModelForSequenceClassification.from_pretrained(folder, **kwargs))
