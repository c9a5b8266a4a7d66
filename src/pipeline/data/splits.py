"""Deterministic train/validation/test splits by a hash of the normalised text.

A text's split depends only on the text and the salt, never on what else is in the data, so the test
split of a growing snapshot only grows: a frozen holdout that no later training run ever sees.
"""

from __future__ import annotations

import hashlib

import pandas as pd

from pipeline.config import DataConfig
from pipeline.data.readers import normalise_text, read_labeled_file

SPLITS = ("train", "validation", "test")


def split_bucket(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by the normalised text and the salt."""
    digest = hashlib.blake2b(f"{salt}\x00{normalise_text(text)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_splits(texts: pd.Series, validation_share: float, test_share: float, salt: str) -> pd.Series:
    """Series of 'train' / 'validation' / 'test', aligned with ``texts``."""
    buckets = texts.map(lambda t: split_bucket(t, salt))
    result = pd.Series("train", index=texts.index, dtype=object)
    result[buckets < test_share + validation_share] = "validation"
    result[buckets < test_share] = "test"
    return result


def split_frame(
    frame: pd.DataFrame, config: DataConfig, holdout: pd.DataFrame | None = None
) -> dict[str, pd.DataFrame]:
    """Split snapshot rows. With a pinned ``holdout`` frame it is the test split, and any of its texts
    are removed from train and validation (no leakage)."""
    if holdout is not None:
        held = set(holdout["text"].map(normalise_text))
        rest = frame[~frame["text"].map(normalise_text).isin(held)]
        splits = assign_splits(rest["text"], config.validation_share, 0.0, config.split_salt)
        return {
            "train": rest[splits == "train"].reset_index(drop=True),
            "validation": rest[splits == "validation"].reset_index(drop=True),
            "test": holdout.reset_index(drop=True),
        }
    splits = assign_splits(frame["text"], config.validation_share, config.test_share, config.split_salt)
    return {name: frame[splits == name].reset_index(drop=True) for name in SPLITS}


def load_holdout(config: DataConfig) -> pd.DataFrame | None:
    """The pinned test set (``data.holdout``), when one is configured."""
    return read_labeled_file(config.holdout, config) if config.holdout else None
