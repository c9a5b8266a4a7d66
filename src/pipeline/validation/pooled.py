"""Many files, one Great Expectations validation.

A landing zone of thousands of small exports would otherwise pay a whole validation (about half a
second of Great Expectations set-up) per file. Files small enough to be tokenized whole are pooled into
one frame with a file number per row; the derived columns are computed per file
(``derive_columns(groups=...)``); the suite runs once, listing every unexpected row; and each file's
verdict is taken apart from that one result exactly as if the file had been validated alone: a row rule
counts the file's own rows against its ``mostly``, and the mean of a column and the label-drift
divergence are computed on the file's own rows the way Great Expectations computes them. A suite with
any other kind of table-level expectation, or a row condition, is not pooled: each file runs alone.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd

from pipeline.config import ValidationConfig
from pipeline.validation.columns import ContractReference, derive_columns
from pipeline.validation.contract import (
    DEFAULT_CONFLICT_SHARE,
    contract_result,
    gx_results,
    load_suite,
    prepare_expectations,
    suite_parameters,
    validate_frame,
)
from pipeline.validation.observations import describe_check
from pipeline.validation.results import EXAMPLES, ContractResult

logger = logging.getLogger(__name__)

POOL_ROWS = 50_000  # rows per pooled validation: bounds the memory of one pool
EXISTS, MEAN, KL = (
    "expect_column_to_exist",
    "expect_column_mean_to_be_between",
    "expect_column_kl_divergence_to_be_less_than",
)
COMPLETE = {"result_format": "COMPLETE"}


def pool_limit(config: ValidationConfig) -> int:
    """Largest file (rows) that is pooled: one the token checks read whole, as they would alone."""
    return min(POOL_ROWS, config.token_check_rows or POOL_ROWS)


def pools(sizes: list[int], limit: int) -> list[list[int]]:
    """Indices grouped into pools of at most ``POOL_ROWS`` rows; a file over ``limit`` is a pool alone."""
    groups: list[list[int]] = []
    current: list[int] = []
    rows = 0
    for index, size in enumerate(sizes):
        if size > limit:
            groups.append([index])
            continue
        if current and rows + size > POOL_ROWS:
            groups.append(current)
            current, rows = [], 0
        current.append(index)
        rows += size
    return groups + ([current] if current else [])


def poolable(expectations: list[dict]) -> bool:
    """Whether every expectation's per-file verdict can be taken apart from a pooled run."""
    from great_expectations.expectations.expectation import ColumnMapExpectation
    from great_expectations.expectations.registry import get_expectation_impl

    for expectation in expectations:
        kwargs = expectation.get("kwargs") or {}
        if kwargs.get("row_condition"):
            return False
        if expectation["type"] in (EXISTS, MEAN):
            continue
        if expectation["type"] == KL:
            partition = kwargs.get("partition_object") or {}
            if "bins" in partition or kwargs.get("bucketize_data") or kwargs.get("internal_weight_holdout"):
                return False
            continue
        try:
            if not issubclass(get_expectation_impl(expectation["type"]), ColumnMapExpectation):
                return False
        except Exception:  # an expectation GX does not know: let the solo run report it
            return False
    return True


def validate_files(
    frames: list[pd.DataFrame | Callable[[], pd.DataFrame]],
    config: ValidationConfig,
    sizes: list[int] | None = None,
    tokenizer=None,
    max_length: int | None = None,
    allowed_labels: list[str] | None = None,
    reference: pd.DataFrame | ContractReference | None = None,
    test_texts: set[str] | np.ndarray | None = None,
    max_conflict_share: float = DEFAULT_CONFLICT_SHARE,
    docs=None,
    names: list[str] | None = None,
) -> list[ContractResult]:
    """One ContractResult per frame, the same as ``validate_frame`` on each, with one validation per pool.

    A frame may be given as a function that loads it (with its row count in ``sizes``), so that only one
    pool's rows are in memory at a time. ``names`` (file names) name the validations in Data Docs: one
    page per pool."""
    if isinstance(reference, pd.DataFrame):
        reference = ContractReference.from_frame(reference)
    common = dict(
        tokenizer=tokenizer,
        max_length=max_length,
        allowed_labels=allowed_labels,
        reference=reference,
        test_texts=test_texts,
        max_conflict_share=max_conflict_share,
        docs=docs,
    )
    results: list[ContractResult | None] = [None] * len(frames)
    sizes = sizes if sizes is not None else [len(f) for f in frames]
    # a suite that cannot be taken apart runs each file alone (limit -1: no pool), before any pooled work
    limit = pool_limit(config) if poolable(load_suite([config.suite, *config.extra_suites])["expectations"]) else -1
    for group in pools(sizes, limit):
        members = [frames[i]() if callable(frames[i]) else frames[i] for i in group]
        label = [names[i] if names else f"file-{i + 1}" for i in group]
        if len(group) == 1:
            results[group[0]] = validate_frame(members[0], config, run_name=label[0], **common)
            continue
        title = "+".join(label) if len(label) <= 3 else f"{label[0]}+{len(label) - 1}-more-files"
        pooled = _validate_pool(members, config, run_name=title, **common)
        if pooled is None:  # a result that cannot be taken apart: each file alone
            pooled = [validate_frame(f, config, run_name=n, **common) for n, f in zip(label, members)]
        for index, result in zip(group, pooled):
            results[index] = result
        del members, pooled
        gc.collect()  # a validation's Great Expectations objects hold its rows in reference cycles
    return results


def _validate_pool(frames, config, tokenizer, max_length, allowed_labels, reference, test_texts,
                   max_conflict_share, docs, run_name) -> list[ContractResult] | None:  # fmt: skip
    suite = load_suite([config.suite, *config.extra_suites])
    sizes = [len(f) for f in frames]
    groups = np.repeat(np.arange(len(frames)), sizes)
    pooled = pd.concat(frames, ignore_index=True)
    derived, notes = derive_columns(
        pooled, tokenizer, test_texts, reference, None, config.missing_label_markers, groups=groups
    )
    distribution = reference.distribution if reference is not None and reference.distribution else None
    params = suite_parameters(config, allowed_labels, max_length, distribution, max_conflict_share)
    expectations, skipped = prepare_expectations(suite, derived, params, config.severity)
    if not poolable(expectations):
        return None
    raw, page = gx_results(derived, suite, expectations, docs, run_name, COMPLETE)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for index, size in enumerate(sizes):
        part = derived.iloc[bounds[index] : bounds[index + 1]].reset_index(drop=True)
        checks = [file_check(r, part, int(bounds[index]), params) for r in raw]
        if any(check is None for check in checks):
            return None
        result = contract_result(checks, size, skipped, suite, page)
        result.notes += notes
        out.append(result)
    return out


def file_check(result, part: pd.DataFrame, start: int, params: dict) -> dict | None:
    """One file's check from a pooled GX result (``part``: the file's rows, from ``start`` in the pool);
    None when this result cannot be taken apart."""
    config = result.expectation_config
    res = result.result or {}
    column = config.kwargs.get("column")
    if result.exception_info and result.exception_info.get("raised_exception"):
        return describe_check(config, res, False, part, params, result.exception_info)
    if config.type == EXISTS:
        return describe_check(config, res, bool(result.success), part, params)
    if config.type == MEAN:
        value = pd.to_numeric(part[column], errors="coerce").mean()
        return describe_check(config, *mean_verdict(value, config.kwargs), part, params)
    if config.type == KL:
        return describe_check(config, *kl_verdict(value_counts(part[column]), config.kwargs), part, params)
    if res.get("unexpected_count") is None or res.get("unexpected_index_list") is None:
        return None
    indices = np.asarray(res["unexpected_index_list"], dtype=np.int64)
    mine = np.sort(indices[(indices >= start) & (indices < start + len(part))] - start)
    missing = int(part[column].isna().sum()) if res.get("missing_count") is not None else None
    success = map_verdict(len(part), missing, len(mine), config.kwargs)
    mine_res = {
        "unexpected_count": len(mine),
        "element_count": len(part),
        "missing_count": missing,
        "partial_unexpected_index_list": [int(i) for i in mine[:EXAMPLES]],
    }
    return describe_check(config, mine_res, success, part, params)


def map_verdict(element: int, missing: int | None, unexpected: int, kwargs: dict) -> bool:
    """Success of a row rule, as GX decides it: the share of considered (non-missing) rows that pass is at
    least ``mostly``; no row considered passes."""
    considered = element - (missing or 0)
    mostly = 1.0 if kwargs.get("mostly") is None else float(kwargs["mostly"])
    return considered == 0 or (considered - unexpected) / considered >= mostly


def mean_verdict(value, kwargs: dict) -> tuple[dict, bool]:
    """(result, success) of ``expect_column_mean_to_be_between`` for a mean, as GX decides it."""
    if value is None or pd.isnull(value):
        return {"observed_value": None}, False
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    above = low is None or (value > low if kwargs.get("strict_min") else value >= low)
    below = high is None or (value < high if kwargs.get("strict_max") else value <= high)
    return {"observed_value": float(value)}, bool(above and below)


def value_counts(values: pd.Series) -> pd.Series:
    """Counts of the non-missing values, sorted by value as GX sorts them."""
    counts = values.dropna().value_counts()
    try:
        return counts.sort_index()
    except TypeError:
        return counts


def kl_verdict(counts: pd.Series, kwargs: dict) -> tuple[dict, bool]:
    """(result, success) of a categorical ``expect_column_kl_divergence_to_be_less_than`` on a column with
    these value counts, as GX computes it."""
    from scipy import stats

    partition = kwargs["partition_object"]
    holdout = kwargs.get("tail_weight_holdout") or 0
    observed = counts / max(int(counts.sum()), 1)
    expected = pd.Series(partition["weights"], index=partition["values"], name="expected")
    table = pd.concat([expected, observed.rename("count")], axis=1)
    missing = table.isnull().sum()
    pk = table["count"].fillna(0)
    qk = table["expected"] * (1 - holdout) if missing["expected"] > 0 else table["expected"]
    if missing["expected"] > 0:
        qk = qk.fillna(holdout / missing["expected"])
    divergence = stats.entropy(pk, qk)
    value = None if np.isinf(divergence) or np.isnan(divergence) else float(divergence)
    threshold = kwargs.get("threshold")
    success = True if threshold is None else bool(divergence <= threshold)
    details = {
        "observed_partition": {"values": table.index.tolist(), "weights": pk.tolist()},
        "expected_partition": {"values": table.index.tolist(), "weights": qk.tolist()},
    }
    return {"observed_value": value, "details": details}, success
