"""Entry points of the validation stage: the per-file contract, the data gate, reports."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from pipeline.config import PipelineConfig
from pipeline.data.readers import IngestionError, file_sha256, normalise_text, read_labeled_file
from pipeline.data.snapshots import COLUMNS, Snapshot, load_snapshot
from pipeline.data.splits import assign_splits, load_holdout
from pipeline.data.staging import StagedBatch
from pipeline.data.store import DataStore
from pipeline.results import DataOutcome, NoDataError
from pipeline.storage import as_data_path
from pipeline.validation.columns import ContractReference, key_hashes
from pipeline.validation.contract import validate_frame, validate_snapshot
from pipeline.validation.data_docs import DataDocs
from pipeline.validation.pooled import pool_limit, validate_files
from pipeline.validation.results import ContractResult, DataValidationError, combine_results
from pipeline.validation.snapshot_checks import refuse_class_breakers
from pipeline.validation.streamed import validate_part
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


def snapshot_reference(config: PipelineConfig, head: Snapshot | None) -> ContractReference | None:
    """The current snapshot as the contract compares with it (text hashes, labels, the test split's text
    hashes), read in batches: never all its rows at once."""
    if head is None:
        return None
    holdout = load_holdout(config.data)
    if holdout is not None:
        reference = ContractReference.from_batches(head.iter_batches())
        if reference is not None:
            reference.test_keys = key_hashes(holdout["text"].map(normalise_text))
        return reference
    data = config.data

    def in_test(batch: pd.DataFrame):
        return assign_splits(batch["text"], data.validation_share, data.test_share, data.split_salt) == "test"

    return ContractReference.from_batches(head.iter_batches(), test_of=in_test)


def allowed_labels_for(config: PipelineConfig, head: Snapshot | None) -> list[str] | None:
    """Configured labels, else (unless new labels are allowed) the labels of the current snapshot."""
    if config.validation.allowed_labels:
        return [str(x) for x in config.validation.allowed_labels]
    if head is not None and not config.validation.allow_new_labels and len(head.manifest.label_counts) >= 2:
        return sorted(head.manifest.label_counts)  # one class is no label set: it is never frozen from it
    return None


def contract_inputs(config: PipelineConfig, head: Snapshot | None) -> dict:
    """What the contract compares a batch with: allowed labels, the current snapshot, its test texts."""
    reference = snapshot_reference(config, head)
    return {
        "allowed_labels": allowed_labels_for(config, head),
        "reference": reference,
        "test_texts": reference.test_keys if reference is not None else None,
    }


def data_docs_for(config: PipelineConfig, workspace: Workspace) -> DataDocs | None:
    return DataDocs.in_reports(workspace.reports) if config.validation.data_docs else None


def contract_tokenizer(config: PipelineConfig):
    """The model's tokenizer, for the contract's token checks (truncation, unknown tokens)."""
    from pipeline.training.modeling import load_tokenizer

    return load_tokenizer(config.model.name_or_path)


def contract_checker(config: PipelineConfig, tokenizer, contracts: dict, docs: DataDocs | None = None):
    """The per-file data contract as a DataStore ``check`` callback; records every result in ``contracts``.
    Small files are validated together (``pipeline.validation.pooled``), each still judged on its own rows."""

    def check(batch: StagedBatch, head: Snapshot | None) -> dict[str, dict]:
        inputs = contract_inputs(config, head)
        common = dict(tokenizer=tokenizer, max_length=config.model.max_length, **inputs)
        common["max_conflict_share"] = config.data.max_conflict_share
        limit = pool_limit(config.validation)
        small = [staged for staged in batch.files if staged.rows <= limit]
        results = validate_files(
            [lambda staged=staged: staged.frame for staged in small],
            config.validation,
            sizes=[staged.rows for staged in small],
            docs=docs,
            names=[Path(staged.uri).name for staged in small],
            **common,
        )
        results = dict(zip([staged.uri for staged in small], results))
        for staged in batch.files:
            if staged.uri not in results:  # a large file: in chunks, or whole when the suite needs it
                streamed = validate_part(staged.path, staged.rows, config.validation, **common)
                results[staged.uri] = streamed or validate_frame(
                    staged.frame, config.validation, docs=docs, run_name=Path(staged.uri).name, **common
                )
        rejected = {}
        for staged in batch.files:
            result = results[staged.uri]
            contracts[staged.uri] = result.to_dict()
            if not result.success:
                rejected[staged.uri] = {
                    "rule": result.failures[0]["rule"],
                    "message": result.summary(staged.uri),
                    "failures": result.failures,
                    "warnings": result.warnings,
                }
        rejected.update(refuse_class_breakers(config, batch, head, rejected))
        return rejected

    return check


def validate_file(
    config: PipelineConfig, workspace: Workspace, uri: str, docs: DataDocs | None = None
) -> ContractResult:
    """Run the contract on one file as ingestion would (against the current snapshot, if the workspace has
    one), without ingesting it; the snapshot suite judges the snapshot the file would make.

    Raises IngestionError when the file cannot be read.
    """
    frame = read_labeled_file(uri, config.data)
    has_ledger = bool(workspace.ledger_url) or any(
        (workspace.ledger / name).exists() for name in ("ledger.sqlite", "ledger.json")
    )
    store = DataStore(workspace, config.data) if has_ledger else None
    head = store.head() if store is not None else None
    batch = validate_frame(
        frame,
        config.validation,
        tokenizer=contract_tokenizer(config),
        max_length=config.model.max_length,
        max_conflict_share=config.data.max_conflict_share,
        docs=docs,
        run_name=Path(uri).name,
        **contract_inputs(config, head),
    )
    rows = pd.concat([head.load()[COLUMNS] if head is not None else None, frame[COLUMNS]], ignore_index=True)
    rows = rows.dropna(subset=["text", "label"]).drop_duplicates(subset=["text", "label"])
    snapshot = validate_snapshot(rows, config.validation, docs, run_name=f"{Path(uri).name}-snapshot")
    result = combine_results([batch, snapshot])
    result.rows = len(frame)
    known = store.ledger.file(file_sha256(uri)) if store is not None else None
    if known:
        result.notes.append(
            f"this content is already in the ledger ({known['status']}): ingestion would skip it, "
            "and the snapshot it was compared with may already hold its rows"
        )
    return result


def write_contract_report(workspace: Workspace, snapshot_id: str, name: str, result: ContractResult) -> Path:
    """``reports/contracts/<snapshot id>/<name>.json`` and ``.md``; returns the folder."""
    folder = workspace.reports / "contracts" / snapshot_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(result.to_dict(), indent=2, default=str), encoding="utf-8")
    (folder / f"{name}.md").write_text(result.to_markdown(f"Data contract: {name}"), encoding="utf-8")
    return folder


def check_data_gate(config: PipelineConfig, workspace: Workspace, outcome: DataOutcome) -> ContractResult:
    """Stop the run when a file of this batch was quarantined or the snapshot breaks the snapshot suite.

    Raises DataValidationError (contract; its message names the rule, the observed value and example
    rows, and ``result`` holds every check) or IngestionError (unreadable file), or NoDataError.
    """
    for item in outcome.quarantined:
        others = len(outcome.quarantined) - 1
        contract = outcome.contracts.get(item["uri"])
        if contract is None and item.get("report"):
            report = json.loads(as_data_path(item["report"].replace(".report.md", ".report.json")).read_text())
            contract = {"success": False, "failures": report["failures"]} if report.get("failures") else None
        source = item["uri"] + (f" (and {others} more quarantined files)" if others else "")
        if contract is not None:
            raise DataValidationError(ContractResult.from_dict(contract), source=source)
        raise IngestionError(source, item["rule"] or "unreadable", item.get("message") or "")
    if outcome.snapshot_id is None:
        raise NoDataError(
            f"no labeled data: drop CSV/TSV/JSONL/Parquet files into {workspace.landing}, "
            "pass --data PATH, or run `pipeline demo` for the demo data set"
        )
    snapshot = load_snapshot(workspace.snapshots, outcome.snapshot_id)
    result = validate_snapshot(
        snapshot.load(), config.validation, data_docs_for(config, workspace), run_name=f"snapshot-{snapshot.id}"
    )
    write_contract_report(workspace, snapshot.id, "snapshot", result)
    if not result.success:
        raise DataValidationError(result, source=f"snapshot {snapshot.id}")
    return result
