"""Batched prediction with a loaded model: class probabilities for tokenized examples or raw texts."""

from __future__ import annotations

import contextlib
import functools

import numpy as np
import torch

from pipeline.training.batching import evaluation_batches, pad_batch


def autocast_context(device: torch.device, bf16: bool, cpu_bf16: bool = False):
    """bf16 autocast on CUDA; on CPU only with ``cpu_bf16`` (inference on a CPU with native bf16: training
    on CPU stays fp32, where it was measured faster), else plain fp32."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and cpu_bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 inference is about twice
    as fast as fp32; elsewhere bf16 is emulated and slower. Read from /proc/cpuinfo (Linux); False elsewhere."""
    try:
        with open(cpuinfo, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


@torch.inference_mode()
def predict_proba(
    model,
    input_ids: list[np.ndarray],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    bf16: bool = True,
    cpu_bf16: bool = False,
) -> np.ndarray:
    """Softmax probabilities, shape (examples, classes), in the input order (bf16 as ``autocast_context``)."""
    was_training = model.training
    model.eval()
    lengths = np.fromiter((len(x) for x in input_ids), dtype=np.int64, count=len(input_ids))
    num_labels = model.config.num_labels
    out = np.zeros((len(input_ids), num_labels), dtype=np.float32)
    for indices in evaluation_batches(lengths, batch_size):
        ids, mask = pad_batch([input_ids[i] for i in indices], pad_id)
        with autocast_context(device, bf16, cpu_bf16):
            logits = model(
                input_ids=ids.to(device, non_blocking=True), attention_mask=mask.to(device, non_blocking=True)
            ).logits
        out[indices] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    model.train(was_training)
    return out


def predict_texts(
    model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64, device: torch.device | None = None
) -> tuple[list[str], list[float]]:
    """(label, probability of that label) for each raw text, using the model's ``id2label``."""
    from pipeline.training.tokenization import tokenize_texts

    device = device or next(model.parameters()).device
    if not texts:
        return [], []
    proba = predict_proba(
        model, tokenize_texts(tokenizer, list(texts), max_length), tokenizer.pad_token_id, batch_size, device
    )
    best = proba.argmax(axis=1)
    id2label = model.config.id2label
    return [str(id2label[int(i)]) for i in best], [float(proba[r, i]) for r, i in enumerate(best)]
