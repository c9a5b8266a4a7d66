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
from importlib import resources
from pathlib import Path

import pandas as pd

from pipeline.config import DataConfig, ValidationConfig
from pipeline.validation.columns import REQUIRED_INPUT, ContractReference, derive_columns
from pipeline.validation.data_docs import DataDocs
from pipeline.validation.observations import _describe
from pipeline.validation.results import EXAMPLES, ContractResult

logger = logging.getLogger(__name__)

DEFAULT_CONFLICT_SHARE = DataConfig.model_fields["max_conflict_share"].default


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


def suite_parameters(
    config: ValidationConfig,
    allowed_labels: list[str] | None,
    max_length: int | None,
    reference_distribution: dict[str, float] | None,
    max_conflict_share: float = DEFAULT_CONFLICT_SHARE,
) -> dict:
    """What ``$PARAMETER`` references in a suite resolve to; custom suites may use any of these names."""
    params = config.model_dump()
    params.update(
        {
            "allowed_labels": allowed_labels or [],
            "max_tokens": max_length or 10**9,
            "max_conflict_share": max_conflict_share,
            "truncated_mostly": 1.0 - config.max_truncated_share,
            "control_chars_mostly": 1.0 - config.max_control_char_share,
            "duplicate_mostly": 1.0 - config.max_duplicate_share,
            "leakage_mostly": 1.0 - config.max_leakage_share,
            "conflict_mostly": 1.0 - max_conflict_share,
        }
    )
    if reference_distribution:
        params["label_partition"] = {
            "values": list(reference_distribution),
            "weights": list(reference_distribution.values()),
        }
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
                raise ValueError(
                    f"expectation {rule}: unknown suite parameter {name!r}; known: {', '.join(sorted(params))}"
                )
            return params[name]
        return {key: resolve_parameters(item, params, rule) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_parameters(item, params, rule) for item in value]
    return value


def prepare_expectations(
    suite: dict, frame: pd.DataFrame, params: dict, overrides: dict[str, str] | None = None
) -> tuple[list[dict], list[dict]]:
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
        expectation = {
            **expectation,
            "meta": {**(expectation.get("meta") or {}), "rule": rule},
            "kwargs": resolve_parameters(expectation.get("kwargs") or {}, params, rule),
        }
        expectation.pop("id", None)
        if rule in overrides:
            expectation["severity"] = "critical" if overrides[rule] == "error" else "warning"
        run.append(expectation)
    return run, skipped


def gx_results(
    frame: pd.DataFrame,
    suite: dict,
    expectations: list[dict],
    docs: DataDocs | None = None,
    run_name: str | None = None,
    result_format: dict | None = None,
) -> tuple[list, str | None]:
    """(GX expectation results of one validation of ``frame``, the Data Docs page or None)."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    from pipeline.validation.data_docs import context_config, make_offline

    context = gx.get_context(project_config=context_config(docs), mode="ephemeral")
    batch_definition = (
        context.data_sources.add_pandas("labeled_text")
        .add_dataframe_asset("batch")
        .add_batch_definition_whole_dataframe("whole")
    )
    gx_suite = context.suites.add(
        gx.ExpectationSuite(name=suite["name"], expectations=expectations, meta=suite.get("meta") or {})
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite['name']}-run", data=batch_definition, suite=gx_suite)
    )
    batch = {"dataframe": frame.reset_index(drop=True)}
    result_format = result_format or {"result_format": "SUMMARY", "partial_unexpected_count": EXAMPLES}
    if docs is None:
        return definition.run(batch_parameters=batch, result_format=result_format).results, None
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite['name']}-checkpoint",
            validation_definitions=[definition],
            result_format=result_format,
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
        )
    )
    run_id = RunIdentifier(run_name=re.sub(r"[^\w.-]+", "_", run_name or "batch"))
    started = time.time()
    outcome = checkpoint.run(batch_parameters=batch, run_id=run_id)
    identifier, result = next(iter(outcome.run_results.items()))
    make_offline(docs.site_dir, since=started)
    return result.results, str(docs.site_dir / "validations" / Path(*identifier.to_tuple()).with_suffix(".html"))


def contract_result(checks: list[dict], rows: int, skipped: list[dict], suite: dict, docs_page: str | None):
    """A ContractResult from described checks: errors fail it, warnings are reported."""
    failures = [c for c in checks if not c["success"] and c["severity"] == "error"]
    warnings = [c for c in checks if not c["success"] and c["severity"] != "error"]
    return ContractResult(
        success=not failures,
        failures=failures,
        warnings=warnings,
        checks=checks,
        rows=rows,
        skipped=skipped,
        suite=suite["name"],
        docs_page=docs_page,
    )


def run_contract(
    frame: pd.DataFrame,
    suite: dict,
    params: dict,
    overrides: dict[str, str] | None = None,
    docs: DataDocs | None = None,
    run_name: str | None = None,
) -> ContractResult:
    """Validate ``frame`` (with derived columns) against a suite dict; never raises on bad data.

    With ``docs`` the result is also stored and rendered into the (offline) Data Docs site.
    """
    expectations, skipped = prepare_expectations(suite, frame, params, overrides)
    results, docs_page = gx_results(frame, suite, expectations, docs, run_name)
    checks = [_describe(r, frame, params) for r in results]
    return contract_result(checks, len(frame), skipped, suite, docs_page)


def validate_frame(
    frame: pd.DataFrame,
    config: ValidationConfig,
    suite_name: str | None = None,
    allowed_labels: list[str] | None = None,
    tokenizer=None,
    max_length: int | None = None,
    reference: pd.DataFrame | ContractReference | None = None,
    test_texts: set[str] | None = None,
    max_conflict_share: float = DEFAULT_CONFLICT_SHARE,
    docs: DataDocs | None = None,
    run_name: str | None = None,
) -> ContractResult:
    """Run the batch suite (``config.suite`` plus ``config.extra_suites``, or ``suite_name``) on rows.

    ``reference`` is the current snapshot (label drift, conflicts with earlier rows); ``test_texts`` are
    normalised texts of its frozen test split (leakage); ``allowed_labels`` None allows any label.
    Without a tokenizer the tokenizer checks are skipped (and listed in ``skipped``).
    """
    suite = load_suite([suite_name] if suite_name else [config.suite, *config.extra_suites])
    if isinstance(reference, pd.DataFrame):
        reference = ContractReference.from_frame(reference)
    derived, notes = derive_columns(
        frame, tokenizer, test_texts, reference, config.token_check_rows, config.missing_label_markers
    )
    distribution = reference.distribution if reference is not None and reference.distribution else None
    params = suite_parameters(config, allowed_labels, max_length, distribution, max_conflict_share)
    result = run_contract(derived, suite, params, config.severity, docs, run_name)
    result.notes += notes
    return result


def class_balance_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per label with its count and share: what the snapshot suite constrains."""
    counts = frame["label"].astype(str).value_counts()
    return pd.DataFrame(
        {"label": counts.index, "count": counts.to_numpy(), "share": (counts / max(counts.sum(), 1)).to_numpy()}
    )


def validate_snapshot(
    frame: pd.DataFrame, config: ValidationConfig, docs: DataDocs | None = None, run_name: str | None = None
) -> ContractResult:
    """Run the snapshot suite (class balance) on a snapshot's rows."""
    params = suite_parameters(config, None, None, None)
    result = run_contract(
        class_balance_frame(frame), load_suite([config.snapshot_suite]), params, config.severity, docs, run_name
    )
    result.rows = len(frame)
    return result
