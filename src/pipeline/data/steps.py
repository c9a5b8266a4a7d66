"""Entry points of the data stage: ingest new files through the contract into a snapshot; split it."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.data.snapshots import load_snapshot
from pipeline.data.splits import load_holdout, split_frame
from pipeline.data.store import DataStore
from pipeline.results import DataOutcome, NoDataError, Splits
from pipeline.validation.results import ContractResult
from pipeline.validation.snapshot_checks import label_set_notes
from pipeline.validation.steps import contract_checker, contract_tokenizer, data_docs_for, write_contract_report
from pipeline.workspace import Workspace

logger = logging.getLogger(__name__)


def ingest_and_validate(config: PipelineConfig, workspace: Workspace) -> DataOutcome:
    """Ingest new files (configured paths, else the landing zone), run the contract on each, quarantine
    what fails it and snapshot the rest. Does not raise on bad files: ``check_data_gate`` decides.
    Accepted files' contract reports go to ``reports/contracts/<snapshot id>/`` (logged to MLflow later)."""
    store = DataStore(workspace, config.data)
    contracts: dict[str, dict] = {}
    tokenizer = contract_tokenizer(config)
    result = store.ingest(
        config.data.paths or None, contract_checker(config, tokenizer, contracts, data_docs_for(config, workspace))
    )
    outcome = dataclasses.replace(result, contracts=contracts, notes=label_set_notes(config, store.head()))
    for uri in outcome.new_files:
        write_contract_report(workspace, outcome.snapshot_id, Path(uri).name, ContractResult.from_dict(contracts[uri]))
    return outcome


def split_snapshot(config: PipelineConfig, workspace: Workspace, snapshot_id: str) -> Splits:
    """Train/validation/test frames of a snapshot (the test split frozen by text hash or pinned holdout)."""
    frame = load_snapshot(workspace.snapshots, snapshot_id).load()
    frames = split_frame(frame, config.data, load_holdout(config.data))
    if config.data.max_samples and len(frames["train"]) > config.data.max_samples:
        frames["train"] = frames["train"].sample(config.data.max_samples, random_state=config.training.seed)
    if frames["train"].empty:
        raise NoDataError(f"snapshot {snapshot_id} has no training rows")
    return Splits(snapshot_id, frames["train"], frames["validation"], frames["test"])
