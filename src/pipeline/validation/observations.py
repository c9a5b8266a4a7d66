"""What a checked expectation observed: the value, and the example rows a person reads."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from pipeline.validation.results import EXAMPLES

logger = logging.getLogger(__name__)

EXAMPLES_QUERY = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|==|!=|>|<)\s*(@[A-Za-z_]\w*|-?\d+(?:\.\d+)?)\s*$")


COMPARISONS = {
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def select_examples(frame: pd.DataFrame, query: str, params: dict) -> np.ndarray:
    """Rows matching ``query`` (``COLUMN OP NUMBER`` or ``COLUMN OP @param``): a suite file is data, so this
    is a comparison, never evaluated code. ValueError for anything else."""
    match = EXAMPLES_QUERY.match(str(query))
    if not match or match.group(1) not in frame.columns:
        raise ValueError(f"unsupported examples_query {query!r}: expected 'COLUMN OP NUMBER' or 'COLUMN OP @param'")
    column, op, value = match.groups()
    threshold = params[value[1:]] if value.startswith("@") else float(value)
    return COMPARISONS[op](pd.to_numeric(frame[column], errors="coerce").to_numpy(), float(threshold))


def _describe(result, frame: pd.DataFrame, params: dict) -> dict:
    return describe_check(
        result.expectation_config, result.result or {}, bool(result.success), frame, params, result.exception_info
    )


def describe_check(config, res: dict, success: bool, frame: pd.DataFrame, params: dict, exception_info=None) -> dict:
    """A check as reports show it: rule, severity, success, the observed value and example rows of
    ``frame`` (``res`` is a GX result dict; its index lists are positions in ``frame``)."""
    meta = config.meta or {}
    column = config.kwargs.get("column")
    observed = _observed(config.type, res, frame, column)
    if meta.get("observed_format") and isinstance(observed, (int, float, np.number)):
        observed = meta["observed_format"].format(observed)
    if exception_info and exception_info.get("raised_exception"):
        observed = f"error: {exception_info.get('exception_message')}"
    indices = res.get("partial_unexpected_index_list") or []
    if not indices and not success and meta.get("examples_query"):
        try:
            indices = list(np.flatnonzero(select_examples(frame, meta["examples_query"], params)))
        except Exception as exc:  # a bad query in a custom suite must not hide the failure itself
            logger.warning("examples_query %r of %s failed: %s", meta["examples_query"], meta.get("rule"), exc)
    examples = [_example(frame, int(i)) for i in indices[:EXAMPLES] if isinstance(i, (int, np.integer))]
    severity_value = getattr(getattr(config, "severity", None), "value", "critical")
    severity = "error" if str(severity_value).lower() == "critical" else "warning"
    return {
        "rule": meta.get("rule", config.type),
        "expectation": config.type,
        "column": column,
        "severity": severity,
        "success": bool(success),
        "observed": _plain(observed),
        "examples": examples,
        "description": meta.get("description", ""),
    }


def _observed(expectation_type: str, res: dict, frame: pd.DataFrame, column: str | None):
    if res.get("unexpected_count") is not None:
        considered = res.get("element_count", 0) - (res.get("missing_count") or 0)
        share = 100.0 * res["unexpected_count"] / max(considered, 1)
        return f"{res['unexpected_count']} of {considered} rows ({share:.2f}%)"
    if expectation_type == "expect_column_to_exist":
        return "present" if column in frame.columns else f"missing (columns: {', '.join(map(str, frame.columns))})"
    details = res.get("details") or {}
    if expectation_type == "expect_column_kl_divergence_to_be_less_than" and details.get("observed_partition"):
        batch = _partition(details["observed_partition"])
        snapshot = _partition(details.get("expected_partition") or {})
        value = res.get("observed_value")
        new = sorted(set(batch) - set(snapshot))
        head = (
            f"KL {value:.4f}" if value is not None else f"KL undefined (labels not in the snapshot: {', '.join(new)})"
        )
        return f"{head}; batch {batch} vs snapshot {snapshot}"
    return res.get("observed_value")


def _partition(partition: dict) -> dict:
    return {str(v): round(float(w), 3) for v, w in zip(partition.get("values", []), partition.get("weights", []))}


def _example(frame: pd.DataFrame, index: int) -> dict:
    row = frame.iloc[index]
    if "text" not in frame.columns:
        return {k: _plain(v) for k, v in row.items()}
    text = row.get("text")
    label = row.get("label")
    return {
        "source": str(row.get("source", "") or ""),
        "row": int(row["row"]) if "row" in row else index + 1,
        "text": None if _missing(text) else str(text)[:120],
        "label": None if _missing(label) else str(label),
    }


def _missing(value) -> bool:
    return value is None or (not isinstance(value, (str, list, dict)) and bool(pd.isna(value)))


def _plain(value):
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else round(float(value), 6)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value][:20]
    return value
