"""Tokenizing splits with the model's fast tokenizer, cached by content.

The cache key is the split's (text, label) content, the tokenizer's full definition and ``max_length``,
so unchanged data is never tokenized twice, and any change of data or tokenizer makes a new entry.
No padding here: batches are padded dynamically at collation time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.atomic import replace_durably

logger = logging.getLogger(__name__)

TOKENIZE_BATCH = 2048


@dataclass
class TokenizedSplit:
    """Token ids (unpadded, one array per example) and class ids of one split."""

    input_ids: list[np.ndarray]
    labels: np.ndarray
    cache_key: str
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of everything that decides the token ids: vocabulary, normaliser, pre-tokeniser, specials."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec.pop("truncation", None)  # per-call state the fast tokenizer records, not part of its definition
    spec.pop("padding", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(frame: pd.DataFrame, label_map: dict[str, int], tok_fingerprint: str, max_length: int) -> str:
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(frame[["text", "label"]], index=False).to_numpy().tobytes())
    digest.update(json.dumps(label_map, sort_keys=True).encode())
    digest.update(f"{tok_fingerprint}:{max_length}".encode())
    return digest.hexdigest()[:24]


def tokenize_texts(tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
    """Token ids for each text, truncated to ``max_length``, in large batched calls of the fast tokenizer."""
    out: list[np.ndarray] = []
    for start in range(0, len(texts), TOKENIZE_BATCH):
        encoded = tokenizer(
            texts[start : start + TOKENIZE_BATCH],
            truncation=True,
            max_length=max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        out.extend(np.asarray(ids, dtype=np.int32) for ids in encoded["input_ids"])
    return out


def tokenize_split(
    frame: pd.DataFrame, tokenizer, label_map: dict[str, int], max_length: int, cache_dir: Path | None
) -> TokenizedSplit:
    """Tokenize ``frame`` (columns text, label) or load the identical result from ``cache_dir``.

    Raises KeyError naming a label missing from ``label_map``.
    """
    key = cache_key(frame, label_map, tokenizer_fingerprint(tokenizer), max_length)
    entry = cache_dir / f"{key}.npz" if cache_dir else None
    if entry is not None and entry.exists():
        with np.load(entry) as stored:
            flat, offsets, labels = stored["flat"], stored["offsets"], stored["labels"]
        ids = [flat[offsets[i] : offsets[i + 1]] for i in range(len(labels))]
        logger.info("tokenized split %s loaded from cache (%d rows)", key, len(labels))
        return TokenizedSplit(ids, labels, key, from_cache=True)

    unknown = sorted(set(frame["label"]) - set(label_map))
    if unknown:
        raise KeyError(f"labels not in the label map: {unknown[:10]}")
    labels = frame["label"].map(label_map).to_numpy(dtype=np.int64)
    ids = tokenize_texts(tokenizer, frame["text"].tolist(), max_length)
    if entry is not None:
        entry.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in ids], out=offsets[1:])
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int32)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".npz")
        os.close(fd)
        try:
            np.savez(tmp, flat=flat, offsets=offsets, labels=labels)
            replace_durably(Path(tmp), entry)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return TokenizedSplit(ids, labels, key, from_cache=False)
