"""Derived columns the data contract constrains: what needs more than one column, the current snapshot
or the model's tokenizer is computed here once, vectorised, so that a suite can judge it per row.

Columns (a custom suite may use them too): ``text_stripped_length`` (NaN for missing or blank text),
``is_blank``, ``has_control_chars``, ``in_test_split``, ``is_duplicate`` (exact (text, label) repeat in
the batch), ``is_conflict`` (the normalised text carries another label in the batch or the snapshot)
and, with a tokenizer, ``token_count``, ``unknown_token_share`` (on a sample, see ``token_check_rows``)
and ``content_tokens`` (tokens besides the special ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.data.readers import normalise_text

CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
SAMPLE_SEED = 0
TOKEN_COLUMNS = ("token_count", "unknown_token_share", "content_tokens")
REQUIRED_INPUT = {
    **{name: "the text column" for name in ("text_stripped_length", "is_blank", "has_control_chars", "in_test_split")},
    **{name: "the text and label columns" for name in ("is_duplicate", "is_conflict")},
    "label_is_missing_marker": "the label column",
    **{name: "the model's tokenizer" for name in TOKEN_COLUMNS},
}


def key_hashes(keys) -> np.ndarray:
    """64-bit hashes of normalised texts: how the snapshot's texts are held for the conflict and leakage
    checks (8 bytes a text instead of the text)."""
    return pd.util.hash_array(np.asarray(keys, dtype=object))


@dataclass
class ContractReference:
    """What a batch is compared with: the current snapshot's (normalised text hash, label) pairs, its label
    mix and the hashes of its frozen test split's normalised texts."""

    pairs: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"key": np.zeros(0, np.uint64), "label": np.zeros(0, object)})
    )
    distribution: dict[str, float] = field(default_factory=dict)
    test_keys: np.ndarray | None = None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> ContractReference | None:
        return cls.from_batches([frame] if frame is not None else [])

    @classmethod
    def from_batches(cls, batches, test_of=None) -> ContractReference | None:
        """From a snapshot's rows, one batch at a time (never all at once). ``test_of(batch) -> bool mask``
        marks the rows of the frozen test split: their hashes are collected in ``test_keys``."""
        pairs, counts, tests = [], pd.Series(dtype="int64"), []
        for batch in batches:
            labels = batch["label"].astype(str)
            keys = key_hashes(batch["text"].map(normalise_text))
            pairs.append(pd.DataFrame({"key": keys, "label": labels.to_numpy()}).drop_duplicates())
            counts = counts.add(labels.value_counts(), fill_value=0)
            if test_of is not None:
                tests.append(keys[np.asarray(test_of(batch), dtype=bool)])
        if not pairs or counts.sum() == 0:
            return None
        shares = (counts / counts.sum()).sort_index()
        return cls(
            pd.concat(pairs, ignore_index=True).drop_duplicates(),
            {str(k): float(v) for k, v in shares.items()},
            np.unique(np.concatenate(tests)) if tests else None,
        )


def derive_columns(
    frame: pd.DataFrame,
    tokenizer=None,
    test_texts: set[str] | None = None,
    reference: ContractReference | None = None,
    token_rows: int | None = None,
    missing_markers: list[str] | tuple[str, ...] = (),
    groups: np.ndarray | None = None,
    fixed: dict[str, np.ndarray] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """(frame with the derived columns, notes for the report). Columns whose input is missing are left
    out, so the expectations on them are skipped and the column-presence expectations fail instead.

    ``groups`` (one file number per row) makes the batch-level columns (``is_duplicate``, ``is_conflict``)
    per file, as if each file were derived alone: how pooled files are validated together. ``fixed``
    supplies ``is_duplicate``, ``is_conflict`` and the tokenizer sample (``token_sample``, positions)
    computed over a whole file, for one chunk of it: how a large file is validated in chunks."""
    fixed = fixed or {}
    out = frame.reset_index(drop=True).copy()
    notes: list[str] = []
    if "label" in out.columns:
        out["label_is_missing_marker"] = label_is_missing_marker(out["label"], missing_markers)
    if "text" not in out.columns:
        return out, notes
    present = out["text"].notna()
    text = out["text"].where(present, "").astype(str)
    stripped_length = text.str.strip().str.len()
    out["is_blank"] = present & (stripped_length == 0)
    out["text_stripped_length"] = stripped_length.where(present & ~out["is_blank"])
    out["has_control_chars"] = text.str.contains(CONTROL_CHARS, regex=True)
    tests = hashed_test_texts(test_texts)
    keys = key_hashes(text.map(normalise_text)) if len(tests) or "is_conflict" not in fixed else None
    out["in_test_split"] = np.isin(keys, tests) if len(tests) else False
    if "label" in out.columns and "is_duplicate" in fixed:
        out["is_duplicate"], out["is_conflict"] = fixed["is_duplicate"], fixed["is_conflict"]
    elif "label" in out.columns:
        if groups is None:
            out["is_duplicate"] = out.duplicated(subset=["text", "label"], keep="first")
        else:
            rows = pd.DataFrame({"group": groups, "text": out["text"], "label": out["label"]})
            out["is_duplicate"] = rows.duplicated(keep="first").to_numpy()
        out["is_conflict"] = conflicting_rows(keys, out["label"], present, reference, groups)
    if tokenizer is not None:
        eligible = present & ~out["is_blank"]
        notes += add_token_columns(out, text, eligible, tokenizer, token_rows, fixed.get("token_sample"))
    return out, notes


def hashed_test_texts(test_texts) -> np.ndarray:
    """Hashes of the test split's normalised texts, given as texts or already as hashes."""
    if test_texts is None:
        return np.zeros(0, np.uint64)
    if isinstance(test_texts, np.ndarray):
        return test_texts
    return key_hashes(sorted(test_texts))


def label_is_missing_marker(labels: pd.Series, markers) -> np.ndarray:
    """Labels equal (case-insensitively, ignoring surrounding spaces) to a missing-value marker."""
    folded = {str(m).strip().casefold() for m in markers}
    if not folded:
        return np.zeros(len(labels), dtype=bool)
    return labels.map(lambda v: isinstance(v, str) and v.strip().casefold() in folded).to_numpy(dtype=bool)


def conflicting_rows(
    keys: np.ndarray,
    labels: pd.Series,
    present: pd.Series,
    reference: ContractReference | None,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Rows whose normalised text (``keys``: its hashes) carries more than one label across the batch (each
    group of ``groups`` on its own) and the snapshot."""
    known = present.to_numpy() & labels.notna().to_numpy()
    group = np.zeros(len(keys), dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    pairs = pd.DataFrame(
        {"group": group[known], "key": keys[known], "label": labels.astype(str).to_numpy()[known]}
    ).drop_duplicates()
    if reference is not None and not reference.pairs.empty:
        seen = pairs[["group", "key"]].drop_duplicates()
        pairs = pd.concat([pairs, seen.merge(reference.pairs, on="key")], ignore_index=True).drop_duplicates()
    label_counts = pairs.groupby(["group", "key"]).size()
    conflicted = label_counts.index[label_counts > 1]
    if groups is None:
        return pd.Series(keys).isin(conflicted.get_level_values("key")).to_numpy() & known
    return pd.MultiIndex.from_arrays([group, keys]).isin(conflicted) & known


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids with special tokens, untruncated, from the Rust tokenizer (about 1.6x faster than the
    transformers wrapper); a copy is used when the wrapper left truncation or padding set on it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return tokenizer(
            texts,
            add_special_tokens=True,
            truncation=False,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
    if backend.truncation is not None or backend.padding is not None:
        backend = type(backend).from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [encoding.ids for encoding in encode(texts, add_special_tokens=True)]


def token_sample(eligible: np.ndarray, token_rows: int | None) -> np.ndarray:
    """Positions of the seeded random sample of at most ``token_rows`` eligible rows (all when fewer)."""
    candidates = np.flatnonzero(eligible)
    if token_rows is not None and len(candidates) > token_rows:
        return np.sort(np.random.default_rng(SAMPLE_SEED).choice(candidates, token_rows, replace=False))
    return candidates


def add_token_columns(
    out: pd.DataFrame,
    text: pd.Series,
    eligible: pd.Series,
    tokenizer,
    token_rows: int | None,
    sample: np.ndarray | None = None,
) -> list[str]:
    """Tokenize a seeded sample of at most ``token_rows`` eligible (non-blank) rows, all of them when None
    or fewer, plus every one with no letter or digit (the only ones that can come out empty); the share
    checks use the random sample only, so they stay unbiased."""
    count = len(out)
    candidates = np.flatnonzero(eligible.to_numpy())
    given = sample is not None  # the caller sampled a whole file (and notes it)
    if sample is None:
        sample = token_sample(eligible.to_numpy(), token_rows)
    suspects = np.flatnonzero(eligible.to_numpy() & ~text.str.contains(r"\w", regex=True).to_numpy())
    chosen = np.union1d(sample, suspects)
    encoded = encode_texts(tokenizer, text.iloc[chosen].tolist())
    lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
    flat = np.fromiter((t for ids in encoded for t in ids), dtype=np.int64, count=int(lengths.sum()))
    unknown = flat == tokenizer.unk_token_id if tokenizer.unk_token_id is not None else np.zeros(len(flat), bool)
    special = np.isin(flat, [t for t in tokenizer.all_special_ids if t != tokenizer.unk_token_id])
    row_of_token = np.repeat(np.arange(len(lengths)), lengths)
    per_row_unknown = np.bincount(row_of_token, weights=unknown, minlength=len(lengths))
    per_row_special = np.bincount(row_of_token, weights=special, minlength=len(lengths))
    in_sample = np.isin(chosen, sample)
    token_count = np.full(count, np.nan)
    unknown_share = np.full(count, np.nan)
    content = np.full(count, np.nan)
    token_count[chosen[in_sample]] = lengths[in_sample]
    content_tokens = lengths - per_row_special
    unknown_share[chosen[in_sample]] = (per_row_unknown / np.maximum(content_tokens, 1))[in_sample]
    content[chosen] = content_tokens
    out["token_count"], out["unknown_token_share"], out["content_tokens"] = token_count, unknown_share, content
    if len(sample) < len(candidates) and not given:
        return [token_note(len(sample), len(candidates), len(suspects))]
    return []


def token_note(sampled: int, candidates: int, suspects: int) -> str:
    return (
        f"token checks: truncation and unknown tokens measured on a random sample of {sampled:,} of "
        f"{candidates:,} rows (validation.token_check_rows); empty-after-tokenization on those plus all "
        f"{suspects:,} rows without a letter or digit"
    )
