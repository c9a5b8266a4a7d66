"""A large file validated in chunks, in bounded memory.

The columns that need the whole file (exact duplicates, conflicting labels, the tokenizer's random
sample) are computed first, in one pass over the staged Parquet part, from 64-bit hashes of the texts and
labels (about 26 bytes a row, never the texts themselves), judged in hash buckets so that no hash table
holds every row. Then each chunk of rows gets its derived columns and one Great Expectations validation,
and the file's verdict is summed from the chunks': a row rule's unexpected rows counted against the whole
file's ``mostly``, a column mean from sums, the label divergence from the file's label counts. The result
is the one validating the whole file at once gives (up to a 64-bit hash collision). A suite whose
verdicts cannot be summed this way validates the file whole.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import ValidationConfig
from pipeline.data.readers import normalise_text
from pipeline.data.staging import missing_as_none
from pipeline.validation.columns import ContractReference, derive_columns, key_hashes, token_note, token_sample
from pipeline.validation.contract import (
    DEFAULT_CONFLICT_SHARE,
    contract_result,
    gx_results,
    load_suite,
    prepare_expectations,
    suite_parameters,
)
from pipeline.validation.observations import describe_check
from pipeline.validation.pooled import (
    EXISTS,
    KL,
    MEAN,
    kl_verdict,
    map_verdict,
    mean_verdict,
    poolable,
    value_counts,
)
from pipeline.validation.results import EXAMPLES, ContractResult

logger = logging.getLogger(__name__)

CHUNK_ROWS = 100_000
BUCKETS = 16


def read_chunks(path: Path, columns: list[str] | None = None, chunk_rows: int = CHUNK_ROWS):
    """DataFrames of at most ``chunk_rows`` rows of a staged part, missing values as None."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
        yield missing_as_none(batch.to_pandas())


def whole_file_columns(
    path: Path, rows: int, reference: ContractReference | None, chunk_rows: int = CHUNK_ROWS
) -> dict:
    """``is_duplicate``, ``is_conflict`` and ``eligible`` (non-blank text) for every row of a staged part
    of ``rows`` rows, in two passes (duplicates, then conflicts) so that at most 14 bytes a row of hashes
    are held at a time, in arrays allocated once."""
    pair, bucket_of = np.zeros(rows, dtype=np.uint64), np.zeros(rows, dtype=np.uint8)
    for start, frame in _chunks(path, chunk_rows):
        end = start + len(frame)
        pair[start:end] = pd.util.hash_pandas_object(frame[["text", "label"]], index=False).to_numpy()
        bucket_of[start:end] = pair[start:end] % np.uint64(BUCKETS)
    is_duplicate = np.zeros(rows, dtype=bool)
    for bucket in range(BUCKETS):  # rows keep their order inside a bucket: the first occurrence stays
        members = np.flatnonzero(bucket_of == bucket)
        is_duplicate[members] = pd.Series(pair[members]).duplicated().to_numpy()
    del pair
    codes: dict[str, int] = {}
    key, label = np.zeros(rows, dtype=np.uint64), np.full(rows, -1, dtype=np.int32)
    eligible = np.zeros(rows, dtype=bool)
    for start, frame in _chunks(path, chunk_rows):
        end = start + len(frame)
        present = frame["text"].notna().to_numpy()
        text = frame["text"].where(frame["text"].notna(), "").astype(str)
        eligible[start:end] = present & (text.str.strip().str.len() > 0).to_numpy()
        key[start:end] = key_hashes(text.map(normalise_text))
        label[start:end] = np.where(present, _codes(frame["label"], codes), -1)
        bucket_of[start:end] = key[start:end] % np.uint64(BUCKETS)
    if reference is not None and not reference.pairs.empty:
        ref_key = reference.pairs["key"].to_numpy(dtype=np.uint64)
        ref_label = _codes(reference.pairs["label"], codes)
    else:
        ref_key, ref_label = np.zeros(0, np.uint64), np.zeros(0, np.int32)
    ref_bucket = ref_key % np.uint64(BUCKETS)
    is_conflict = np.zeros(rows, dtype=bool)
    for bucket in range(BUCKETS):
        members = np.flatnonzero((bucket_of == bucket) & (label >= 0))
        mine = ref_bucket == bucket
        table = pd.DataFrame(
            {
                "key": np.concatenate([key[members], ref_key[mine]]),
                "label": np.concatenate([label[members], ref_label[mine]]),
            }
        ).drop_duplicates()
        labels_per_key = table["key"].value_counts()
        conflicted = labels_per_key.index[labels_per_key > 1]
        is_conflict[members] = pd.Series(key[members]).isin(conflicted).to_numpy()
    return {"is_duplicate": is_duplicate, "is_conflict": is_conflict, "eligible": eligible}


def _chunks(path: Path, chunk_rows: int):
    """(first row, frame of text and label) for each chunk of a staged part."""
    start = 0
    for frame in read_chunks(path, ["text", "label"], chunk_rows):
        yield start, frame
        start += len(frame)


def _codes(labels: pd.Series, codes: dict[str, int]) -> np.ndarray:
    """A number per label (-1 for a missing one), the same for the same label across chunks."""
    text = labels.where(labels.notna(), None)
    for value in pd.unique(text.dropna().astype(str)):
        codes.setdefault(value, len(codes))
    return text.map(lambda v: -1 if v is None else codes[str(v)]).to_numpy(dtype=np.int32)


@dataclass
class Tally:
    """One expectation's results summed over the chunks."""

    config: object
    success: bool = True
    error: dict | None = None
    mapped: bool = False
    element: int = 0
    missing: int | None = None
    unexpected: int = 0
    examples: list = field(default_factory=list)
    total: float = 0.0
    count: int = 0
    labels: Counter = field(default_factory=Counter)

    def add(self, result, frame: pd.DataFrame, params: dict) -> bool:
        """Add one chunk's result; False when it cannot be summed."""
        config, res = result.expectation_config, result.result or {}
        column = config.kwargs.get("column")
        self.success &= bool(result.success)
        if result.exception_info and result.exception_info.get("raised_exception"):
            self.error = self.error or result.exception_info
        elif config.type == MEAN:
            values = pd.to_numeric(frame[column], errors="coerce")
            self.total += float(values.sum())
            self.count += int(values.notna().sum())
        elif config.type == KL:
            self.labels.update(value_counts(frame[column]).to_dict())
        elif config.type != EXISTS:
            if res.get("unexpected_count") is None:
                return False
            self.mapped = True
            self.element += int(res.get("element_count") or 0)
            if res.get("missing_count") is not None:
                self.missing = (self.missing or 0) + int(res["missing_count"])
            self.unexpected += int(res["unexpected_count"])
        if len(self.examples) < EXAMPLES and (
            res.get("partial_unexpected_index_list") or (config.meta or {}).get("examples_query")
        ):
            self.examples += describe_check(config, res, False, frame, params)["examples"]
        return True

    def check(self, params: dict, columns: pd.DataFrame) -> dict:
        config = self.config
        if self.error:
            return describe_check(config, {}, False, columns, params, self.error)
        if config.type == MEAN:
            res, success = mean_verdict(self.total / self.count if self.count else np.nan, config.kwargs)
        elif config.type == KL:
            res, success = kl_verdict(_sorted(self.labels), config.kwargs)
        elif self.mapped:
            success = map_verdict(self.element, self.missing, self.unexpected, config.kwargs)
            res = {"unexpected_count": self.unexpected, "element_count": self.element, "missing_count": self.missing}
        else:
            res, success = {}, self.success
        check = describe_check(config, res, success, columns, params)
        check["examples"] = self.examples[:EXAMPLES] if self.mapped or not success else []
        return check


def _sorted(counts: Counter) -> pd.Series:
    series = pd.Series(counts, dtype="int64")
    try:
        return series.sort_index()
    except TypeError:
        return series


def validate_part(
    path: Path,
    rows: int,
    config: ValidationConfig,
    tokenizer=None,
    max_length: int | None = None,
    allowed_labels: list[str] | None = None,
    reference: ContractReference | None = None,
    test_texts: set[str] | np.ndarray | None = None,
    max_conflict_share: float = DEFAULT_CONFLICT_SHARE,
    chunk_rows: int = CHUNK_ROWS,
) -> ContractResult | None:
    """The contract on a staged Parquet part, chunk by chunk; None when the suite cannot be summed."""
    suite = load_suite([config.suite, *config.extra_suites])
    if not poolable(suite["expectations"]):  # before the whole-file passes, which would be wasted
        return None
    whole = whole_file_columns(path, rows, reference, chunk_rows)
    sample = token_sample(whole["eligible"], config.token_check_rows)
    candidates = int(whole["eligible"].sum())
    distribution = reference.distribution if reference is not None and reference.distribution else None
    params = suite_parameters(config, allowed_labels, max_length, distribution, max_conflict_share)
    tallies: dict[str, Tally] = {}
    skipped, notes, suspects, start, columns = [], [], 0, 0, None
    for frame in read_chunks(path, chunk_rows=chunk_rows):
        end = start + len(frame)
        fixed = {name: whole[name][start:end] for name in ("is_duplicate", "is_conflict")}
        fixed["token_sample"] = sample[(sample >= start) & (sample < end)] - start
        derived, _ = derive_columns(frame, tokenizer, test_texts, None, None, config.missing_label_markers, fixed=fixed)
        text = frame["text"].where(frame["text"].notna(), "").astype(str)
        suspects += int((whole["eligible"][start:end] & ~text.str.contains(r"\w", regex=True).to_numpy()).sum())
        expectations, skipped = prepare_expectations(suite, derived, params, config.severity)
        if not tallies and not poolable(expectations):  # parameters resolved: checked on the first chunk
            return None
        raw, _ = gx_results(derived, suite, expectations)
        for result in raw:
            rule = (result.expectation_config.meta or {}).get("rule", result.expectation_config.type)
            tally = tallies.setdefault(rule, Tally(result.expectation_config))
            if not tally.add(result, derived, params):
                return None
        columns, start = derived.head(0), end
        del derived, raw
        gc.collect()  # a validation's Great Expectations objects hold its rows in reference cycles
    if columns is None:
        return None
    checks = [tally.check(params, columns) for tally in tallies.values()]
    result = contract_result(checks, rows, skipped, suite, None)
    if len(sample) < candidates and tokenizer is not None:
        notes.append(token_note(len(sample), candidates, suspects))
    result.notes += notes + [f"validated in chunks of {chunk_rows:,} rows (no Data Docs page for this file)"]
    return result
