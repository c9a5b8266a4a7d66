"""The data contract for labeled text, run with Great Expectations.

Suites are versioned JSON files under ``expectations/suites/`` (Great Expectations 1.x format) whose
thresholds are suite parameters (``{"$PARAMETER": "max_text_length"}``) filled from the configuration
at run time. Checks that need more than one column, the current snapshot or a tokenizer are computed
in ``pipeline.validation.columns`` as derived columns (``is_blank``, ``token_count``, ``is_conflict`` ...)
that the suite then constrains. Each expectation's GX ``severity`` decides: ``critical`` fails the gate
(an ``error``), ``warning`` is reported; ``validation.severity`` overrides it per rule.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config import DataConfig, ValidationConfig
from pipeline.validation.columns import REQUIRED_INPUT, ContractReference, derive_columns
from pipeline.validation.data_docs import DataDocs

logger = logging.getLogger(__name__)

EXAMPLES = 5
DEFAULT_CONFLICT_SHARE = DataConfig.model_fields["max_conflict_share"].default


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
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    suite: str | None = None
    docs_page: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> "ContractResult":
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self, source: str | None = None) -> str:
        """One line: the first failed rule, its observed value and example rows."""
        where = f"{source}: " if source else ""
        if self.success:
            return f"{where}data contract passed ({len(self.checks)} checks, {len(self.warnings)} warnings)"
        first = self.failures[0]
        others = [f["rule"] for f in self.failures[1:]]
        more = f" (also failed: {', '.join(others)})" if others else ""
        examples = "; ".join(format_example(e, width=80) for e in first.get("examples", [])[:3]) or "no example rows"
        return f"{where}data contract failed: rule {first['rule']} observed {first['observed']}; e.g. {examples}{more}"

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self, title: str = "Data contract") -> str:
        status = "PASSED" if self.success else "FAILED"
        lines = [f"## {title}: {status}", "",
                 f"{self.rows} rows, {len(self.checks)} checks, {len(self.failures)} failed, {len(self.warnings)} warnings"
                 + (f" (suite `{self.suite}`)" if self.suite else ""), ""]
        lines += [f"- {note}" for note in self.notes] + ([""] if self.notes else [])
        lines += ["| rule | column | severity | result | observed | examples |", "|---|---|---|---|---|---|"]
        for check in self.checks:
            examples = "<br>".join(format_example(e, width=60) for e in check["examples"][:3])
            cells = [check["rule"], check["column"] or "", check["severity"], "pass" if check["success"] else "**FAIL**",
                     str(check["observed"]), examples]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        if self.skipped:
            lines += ["", "Skipped: " + "; ".join(f"{s['rule']} ({s['reason']})" for s in self.skipped)]
        if self.docs_page:
            lines += ["", f"Data Docs: `{self.docs_page}`"]
        return "\n".join(lines) + "\n"


def combine_results(results: list[ContractResult]) -> ContractResult:
    """One result holding the checks of several suites (batch and snapshot)."""
    merged = ContractResult(success=all(r.success for r in results), rows=results[0].rows if results else 0)
    for result in results:
        merged.failures += result.failures
        merged.warnings += result.warnings
        merged.checks += result.checks
        merged.skipped += result.skipped
        merged.notes += result.notes
        merged.docs_page = merged.docs_page or result.docs_page
    merged.suite = ", ".join(r.suite for r in results if r.suite) or None
    return merged


def format_example(example: dict, width: int | None = None) -> str:
    """``row 4 of bad.csv: '   ' (label 'account')`` for a text row (text cut to ``width`` characters),
    ``key=value`` pairs otherwise."""
    if "text" in example:
        source = Path(str(example.get("source") or "")).name
        where = f"row {example.get('row')}" + (f" of {source}" if source else "")
        text = example["text"]
        if width and isinstance(text, str) and len(text) > width:
            text = text[: width - 1] + "…"
        return f"{where}: {text!r} (label {example.get('label')!r})"
    return ", ".join(f"{k}={v}" for k, v in example.items())


def suites_dir() -> Path:
    return Path(str(resources.files("pipeline.expectations") / "suites"))


def suite_path(name_or_path: str) -> Path:
    """A suite named under expectations/suites/, or a path to a suite JSON file."""
    if name_or_path.endswith(".json") or "/" in name_or_path or "\\" in name_or_path:
        return Path(name_or_path).expanduser()
    return suites_dir() / f"{name_or_path}.json"


def load_suite_dict(name: str, folder: Path | None = None) -> dict:
    path = folder / f"{name}.json" if folder else suite_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no expectation suite {name!r} at {path}")
    suite = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(suite.get("expectations"), list):
        raise ValueError(f"{path}: not a Great Expectations suite (no 'expectations' list)")
    return suite


def load_suite(names: list[str]) -> dict:
    """The first suite with the others' expectations added; an added one whose ``meta.rule`` matches an
    earlier one replaces it (that is how a team changes a built-in expectation without copying the suite)."""
    suites = [load_suite_dict(name) for name in names]
    by_rule: dict[str, dict] = {}
    for suite in suites:
        for expectation in suite["expectations"]:
            by_rule[rule_of(expectation, len(by_rule))] = expectation
    name = "+".join(s.get("name") or Path(n).stem for s, n in zip(suites, names))
    return {**suites[0], "name": name, "expectations": list(by_rule.values())}


def rule_of(expectation: dict, position: int = 0) -> str:
    return (expectation.get("meta") or {}).get("rule") or f"{expectation['type']}#{position}"


def suite_parameters(config: ValidationConfig, allowed_labels: list[str] | None, max_length: int | None,
                     reference_distribution: dict[str, float] | None,
                     max_conflict_share: float = DEFAULT_CONFLICT_SHARE) -> dict:
    """What ``$PARAMETER`` references in a suite resolve to; custom suites may use any of these names."""
    params = config.model_dump()
    params.update({
        "allowed_labels": allowed_labels or [],
        "max_tokens": max_length or 10**9,
        "max_conflict_share": max_conflict_share,
        "truncated_mostly": 1.0 - config.max_truncated_share,
        "control_chars_mostly": 1.0 - config.max_control_char_share,
        "duplicate_mostly": 1.0 - config.max_duplicate_share,
        "leakage_mostly": 1.0 - config.max_leakage_share,
        "conflict_mostly": 1.0 - max_conflict_share,
    })
    if reference_distribution:
        params["label_partition"] = {"values": list(reference_distribution),
                                     "weights": list(reference_distribution.values())}
    return params


def _skip_reason(expectation: dict, frame: pd.DataFrame, params: dict, overrides: dict) -> str | None:
    rule = rule_of(expectation)
    if overrides.get(rule) == "off":
        return "turned off in validation.severity"
    needs = (expectation.get("meta") or {}).get("requires")
    if needs == "allowed_labels" and not params.get("allowed_labels"):
        return "no allowed labels yet (first snapshot, or allow_new_labels)"
    if needs == "reference_distribution" and "label_partition" not in params:
        return "no current snapshot to compare with"
    column = (expectation.get("kwargs") or {}).get("column")
    if column in REQUIRED_INPUT and column not in frame.columns:
        return f"needs {REQUIRED_INPUT[column]}"
    return None


def resolve_parameters(value, params: dict, rule: str):
    """``{"$PARAMETER": name}`` replaced by ``params[name]`` (so Data Docs show the thresholds applied)."""
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"}:
            name = value["$PARAMETER"]
            if name not in params:
                raise ValueError(f"expectation {rule}: unknown suite parameter {name!r}; "
                                 f"known: {', '.join(sorted(params))}")
            return params[name]
        return {key: resolve_parameters(item, params, rule) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_parameters(item, params, rule) for item in value]
    return value


def prepare_expectations(suite: dict, frame: pd.DataFrame, params: dict,
                         overrides: dict[str, str] | None = None) -> tuple[list[dict], list[dict]]:
    """(expectations to run, with parameters and severities applied; skipped rules with the reason).

    Raises ValueError naming the rule when a suite refers to a parameter that does not exist.
    """
    overrides = overrides or {}
    run, skipped = [], []
    for position, expectation in enumerate(suite["expectations"]):
        rule = rule_of(expectation, position)
        reason = _skip_reason(expectation, frame, params, overrides)
        if reason:
            skipped.append({"rule": rule, "reason": reason})
            continue
        expectation = {**expectation, "meta": {**(expectation.get("meta") or {}), "rule": rule},
                       "kwargs": resolve_parameters(expectation.get("kwargs") or {}, params, rule)}
        expectation.pop("id", None)
        if rule in overrides:
            expectation["severity"] = "critical" if overrides[rule] == "error" else "warning"
        run.append(expectation)
    return run, skipped


def run_contract(frame: pd.DataFrame, suite: dict, params: dict, overrides: dict[str, str] | None = None,
                 docs: DataDocs | None = None, run_name: str | None = None) -> ContractResult:
    """Validate ``frame`` (with derived columns) against a suite dict; never raises on bad data.

    With ``docs`` the result is also stored and rendered into the (offline) Data Docs site.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    from pipeline.validation.data_docs import context_config, make_offline

    expectations, skipped = prepare_expectations(suite, frame, params, overrides)
    context = gx.get_context(project_config=context_config(docs), mode="ephemeral")
    batch_definition = context.data_sources.add_pandas("labeled_text").add_dataframe_asset("batch") \
        .add_batch_definition_whole_dataframe("whole")
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite["name"], expectations=expectations,
                                                      meta=suite.get("meta") or {}))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite['name']}-run", data=batch_definition, suite=gx_suite))
    batch = {"dataframe": frame.reset_index(drop=True)}
    result_format = {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES}
    docs_page = None
    if docs is None:
        result = definition.run(batch_parameters=batch, result_format=result_format)
    else:
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{suite['name']}-checkpoint", validation_definitions=[definition], result_format=result_format,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")]))
        run_id = RunIdentifier(run_name=re.sub(r"[^\w.-]+", "_", run_name or "batch"))
        started = time.time()
        outcome = checkpoint.run(batch_parameters=batch, run_id=run_id)
        identifier, result = next(iter(outcome.run_results.items()))
        make_offline(docs.site_dir, since=started)
        docs_page = str(docs.site_dir / "validations" / Path(*identifier.to_tuple()).with_suffix(".html"))
    checks = [_describe(r, frame, params) for r in result.results]
    failures = [c for c in checks if not c["success"] and c["severity"] == "error"]
    warnings = [c for c in checks if not c["success"] and c["severity"] != "error"]
    return ContractResult(success=not failures, failures=failures, warnings=warnings, checks=checks, rows=len(frame),
                          skipped=skipped, suite=suite["name"], docs_page=docs_page)


EXAMPLES_QUERY = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|==|!=|>|<)\s*(@[A-Za-z_]\w*|-?\d+(?:\.\d+)?)\s*$")
COMPARISONS = {">": np.greater, "<": np.less, ">=": np.greater_equal, "<=": np.less_equal, "==": np.equal,
               "!=": np.not_equal}


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
    config = result.expectation_config
    meta = config.meta or {}
    column = config.kwargs.get("column")
    res = result.result or {}
    observed = _observed(config.type, res, frame, column)
    if meta.get("observed_format") and isinstance(observed, (int, float, np.number)):
        observed = meta["observed_format"].format(observed)
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed = f"error: {result.exception_info.get('exception_message')}"
    indices = res.get("partial_unexpected_index_list") or []
    if not indices and not result.success and meta.get("examples_query"):
        try:
            indices = list(np.flatnonzero(select_examples(frame, meta["examples_query"], params)))
        except Exception as exc:  # a bad query in a custom suite must not hide the failure itself
            logger.warning("examples_query %r of %s failed: %s", meta["examples_query"], meta.get("rule"), exc)
    examples = [_example(frame, int(i)) for i in indices[:EXAMPLES] if isinstance(i, (int, np.integer))]
    severity_value = getattr(getattr(config, "severity", None), "value", "critical")
    severity = "error" if str(severity_value).lower() == "critical" else "warning"
    return {"rule": meta.get("rule", config.type), "expectation": config.type, "column": column,
            "severity": severity, "success": bool(result.success), "observed": _plain(observed),
            "examples": examples, "description": meta.get("description", "")}


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
        head = f"KL {value:.4f}" if value is not None else f"KL undefined (labels not in the snapshot: {', '.join(new)})"
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
    return {"source": str(row.get("source", "") or ""), "row": int(row["row"]) if "row" in row else index + 1,
            "text": None if _missing(text) else str(text)[:120], "label": None if _missing(label) else str(label)}


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


def validate_frame(frame: pd.DataFrame, config: ValidationConfig, suite_name: str | None = None,
                   allowed_labels: list[str] | None = None, tokenizer=None, max_length: int | None = None,
                   reference: pd.DataFrame | ContractReference | None = None, test_texts: set[str] | None = None,
                   max_conflict_share: float = DEFAULT_CONFLICT_SHARE, docs: DataDocs | None = None,
                   run_name: str | None = None) -> ContractResult:
    """Run the batch suite (``config.suite`` plus ``config.extra_suites``, or ``suite_name``) on rows.

    ``reference`` is the current snapshot (label drift, conflicts with earlier rows); ``test_texts`` are
    normalised texts of its frozen test split (leakage); ``allowed_labels`` None allows any label.
    Without a tokenizer the tokenizer checks are skipped (and listed in ``skipped``).
    """
    suite = load_suite([suite_name] if suite_name else [config.suite, *config.extra_suites])
    if isinstance(reference, pd.DataFrame):
        reference = ContractReference.from_frame(reference)
    derived, notes = derive_columns(frame, tokenizer, test_texts, reference, config.token_check_rows,
                                    config.missing_label_markers)
    distribution = reference.distribution if reference is not None and reference.distribution else None
    params = suite_parameters(config, allowed_labels, max_length, distribution, max_conflict_share)
    result = run_contract(derived, suite, params, config.severity, docs, run_name)
    result.notes += notes
    return result


def class_balance_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per label with its count and share: what the snapshot suite constrains."""
    counts = frame["label"].astype(str).value_counts()
    return pd.DataFrame({"label": counts.index, "count": counts.to_numpy(),
                         "share": (counts / max(counts.sum(), 1)).to_numpy()})


def validate_snapshot(frame: pd.DataFrame, config: ValidationConfig, docs: DataDocs | None = None,
                      run_name: str | None = None) -> ContractResult:
    """Run the snapshot suite (class balance) on a snapshot's rows."""
    params = suite_parameters(config, None, None, None)
    result = run_contract(class_balance_frame(frame), load_suite([config.snapshot_suite]), params, config.severity,
                          docs, run_name)
    result.rows = len(frame)
    return result
