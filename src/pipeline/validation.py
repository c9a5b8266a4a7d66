"""The data contract for labeled text, run with Great Expectations.

Suites are versioned JSON files under ``expectations/suites/`` (Great Expectations 1.x format) whose
thresholds are suite parameters (``{"$PARAMETER": "max_text_length"}``) filled from the configuration
at run time. Checks that need more than one column or a tokenizer are computed here as derived
columns (``is_blank``, ``token_count``, ``is_duplicate`` ...) that the suite then constrains.
Each expectation's GX ``severity`` decides: ``critical`` fails the gate, ``warning`` is reported.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import ValidationConfig
from pipeline.ingestion import normalise_text

logger = logging.getLogger(__name__)

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
EXAMPLES = 5


class DataValidationError(RuntimeError):
    """Error-level expectations failed. ``result`` is the ContractResult, for reports and tests."""

    def __init__(self, result: "ContractResult", source: str | None = None):
        self.result = result
        self.source = source
        super().__init__(result.summary(source))


@dataclass
class ContractResult:
    success: bool
    failures: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    rows: int = 0

    def summary(self, source: str | None = None) -> str:
        where = f"{source}: " if source else ""
        if self.success:
            return f"{where}data contract passed ({len(self.checks)} checks, {len(self.warnings)} warnings)"
        first = self.failures[0]
        more = f" (+{len(self.failures) - 1} more failed rules)" if len(self.failures) > 1 else ""
        return (f"{where}data contract failed: rule {first['rule']} observed {first['observed']}; "
                f"examples {first['examples'][:3]}{more}")

    def to_dict(self) -> dict:
        return {"success": self.success, "rows": self.rows, "failures": self.failures, "warnings": self.warnings,
                "checks": self.checks}

    def to_markdown(self, title: str = "Data contract") -> str:
        lines = [f"## {title}: {'PASSED' if self.success else 'FAILED'}", "",
                 f"{self.rows} rows, {len(self.checks)} checks, {len(self.failures)} failed, {len(self.warnings)} warnings", "",
                 "| rule | column | severity | result | observed | examples |", "|---|---|---|---|---|---|"]
        for check in self.checks:
            examples = "; ".join(str(e)[:60] for e in check["examples"][:3]).replace("|", "\\|")
            lines.append(f"| {check['rule']} | {check['column'] or ''} | {check['severity']} | "
                         f"{'pass' if check['success'] else 'FAIL'} | {check['observed']} | {examples} |")
        return "\n".join(lines) + "\n"


def suites_dir() -> Path:
    return Path(str(resources.files("expectations") / "suites"))


def load_suite_dict(name: str, folder: Path | None = None) -> dict:
    path = (folder or suites_dir()) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {name!r} at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def derive_columns(frame: pd.DataFrame, tokenizer=None, max_length: int | None = None,
                   test_texts: set[str] | None = None) -> pd.DataFrame:
    """Add the columns the suite constrains: blank text, control characters, duplicates, conflicts,
    leakage into the test split and, with a tokenizer, token counts and unknown-token shares."""
    out = frame.copy()
    text = out["text"].fillna("")
    out["text_stripped_length"] = text.str.strip().str.len()
    out["is_blank"] = out["text"].notna() & (out["text_stripped_length"] == 0)
    out["has_control_chars"] = text.map(lambda t: bool(CONTROL_CHARS.search(t)))
    out["is_duplicate"] = out.duplicated(subset=["text", "label"], keep="first")
    keys = text.map(normalise_text)
    out["is_conflict"] = out.groupby(keys)["label"].transform("nunique").fillna(0).to_numpy() > 1
    out["in_test_split"] = keys.isin(test_texts) if test_texts else False
    if tokenizer is not None:
        encoded = tokenizer(text.tolist(), add_special_tokens=True, truncation=False, padding=False,
                            return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        specials = set(tokenizer.all_special_ids)
        unk = tokenizer.unk_token_id
        out["token_count"] = [len(ids) for ids in encoded]
        out["content_tokens"] = [sum(1 for t in ids if t not in specials or t == unk) for ids in encoded]
        out["unknown_token_share"] = [(sum(1 for t in ids if t == unk) / max(len(ids), 1)) for ids in encoded]
        out["is_truncated"] = out["token_count"] > (max_length or 10**9)
    return out


def suite_parameters(config: ValidationConfig, allowed_labels: list[str] | None, max_length: int | None,
                     reference_distribution: dict[str, float] | None) -> dict:
    params = config.model_dump()
    params.update({
        "allowed_labels": allowed_labels or [],
        "max_tokens": max_length or 10**9,
        "truncated_mostly": 1.0 - config.max_truncated_share,
        "control_chars_mostly": 1.0 - config.max_control_char_share,
        "duplicate_mostly": 1.0 - config.max_duplicate_share,
        "unknown_token_mostly": 1.0 - config.max_unknown_token_share,
    })
    if reference_distribution:
        params["label_partition"] = {"values": list(reference_distribution),
                                     "weights": list(reference_distribution.values())}
    return params


def _applicable(expectation: dict, frame: pd.DataFrame, params: dict) -> bool:
    column = expectation["kwargs"].get("column")
    needs = expectation.get("meta", {}).get("requires")
    if column and column not in frame.columns and expectation["type"] != "expect_column_to_exist":
        return False
    if needs == "allowed_labels" and not params.get("allowed_labels"):
        return False
    if needs == "reference_distribution" and "label_partition" not in params:
        return False
    return True


def run_contract(frame: pd.DataFrame, suite: dict, params: dict) -> ContractResult:
    """Validate ``frame`` (with derived columns) against a suite dict; never raises on bad data."""
    import great_expectations as gx

    expectations = [e for e in suite["expectations"] if _applicable(e, frame, params)]
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("labeled_text").add_dataframe_asset("batch")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite['name']}-run", data=batch_definition, suite=gx_suite))
    result = definition.run(batch_parameters={"dataframe": frame.reset_index(drop=True)},
                            expectation_parameters=params, result_format="COMPLETE")
    checks = [_describe(r, frame) for r in result.results]
    failures = [c for c in checks if not c["success"] and c["severity"] == "error"]
    warnings = [c for c in checks if not c["success"] and c["severity"] != "error"]
    return ContractResult(success=not failures, failures=failures, warnings=warnings, checks=checks, rows=len(frame))


def _describe(result, frame: pd.DataFrame) -> dict:
    config = result.expectation_config
    meta = config.meta or {}
    column = config.kwargs.get("column")
    res = result.result or {}
    observed = res.get("observed_value")
    if observed is None and res.get("unexpected_count") is not None:
        observed = f"{res['unexpected_count']} rows ({res.get('unexpected_percent', 0):.2f}%)"
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed = f"error: {result.exception_info.get('exception_message')}"
    examples = []
    for index in (res.get("unexpected_index_list") or [])[:EXAMPLES]:
        row = frame.iloc[int(index)] if isinstance(index, (int, np.integer)) else None
        if row is not None:
            examples.append({"source": str(row.get("source", "")), "row": int(row["row"]) if "row" in row else int(index) + 1,
                             "text": None if pd.isna(row.get("text")) else str(row.get("text"))[:120],
                             "label": row.get("label")})
    severity_value = getattr(getattr(config, "severity", None), "value", "critical")
    severity = "error" if str(severity_value).lower() == "critical" else "warning"
    return {"rule": meta.get("rule", config.type), "expectation": config.type, "column": column,
            "severity": severity, "success": bool(result.success), "observed": _plain(observed),
            "examples": examples, "description": meta.get("description", "")}


def _plain(value):
    if isinstance(value, (np.floating, float)):
        return round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value][:20]
    return value


def label_distribution(labels: pd.Series) -> dict[str, float]:
    counts = labels.dropna().astype(str).value_counts(normalize=True).sort_index()
    return {str(k): float(v) for k, v in counts.items()}


def validate_frame(frame: pd.DataFrame, config: ValidationConfig, suite_name: str | None = None,
                   allowed_labels: list[str] | None = None, tokenizer=None, max_length: int | None = None,
                   reference: pd.DataFrame | None = None, test_texts: set[str] | None = None) -> ContractResult:
    """Run the named suite (default ``config.suite``) on a batch of rows.

    ``reference`` is the current snapshot (for label drift); ``test_texts`` are normalised texts of
    its frozen test split (for leakage); ``allowed_labels`` None means any label is allowed.
    """
    suite = load_suite_dict(suite_name or config.suite)
    derived = derive_columns(frame, tokenizer, max_length, test_texts)
    reference_distribution = label_distribution(reference["label"]) if reference is not None and len(reference) else None
    params = suite_parameters(config, allowed_labels, max_length, reference_distribution)
    return run_contract(derived, suite, params)


def class_balance_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per label with its count and share: what the snapshot suite constrains."""
    counts = frame["label"].astype(str).value_counts()
    return pd.DataFrame({"label": counts.index, "count": counts.to_numpy(),
                         "share": (counts / max(counts.sum(), 1)).to_numpy()})
