"""The ingestion flow: ingest new labeled files under the data contract and announce a new snapshot.

The ``pipeline.data.arrived`` event it emits starts the retraining deployment.
"""

from __future__ import annotations

from prefect import flow

from pipeline.config import PipelineConfig, with_run_options
from pipeline.tasks.data import ingest_data, prepare_workspace
from pipeline.tasks.events import announce_new_data
from pipeline.tasks.logs import forward_pipeline_logs
from pipeline.tasks.notifications import report_failure
from pipeline.tasks.validation import check_data_gate


@flow(
    name="ingestion",
    log_prints=True,
    validate_parameters=True,
    on_failure=[report_failure],
    on_crashed=[report_failure],
    on_running=[forward_pipeline_logs],
)
def ingestion_flow(data_paths: list[str] | None = None, config: PipelineConfig = PipelineConfig()) -> dict:
    """Ingest the landing zone (or ``data.paths``); fails, after committing the good files, when one was quarantined.

    Args:
        data_paths: Labeled files, folders or URLs to ingest (CSV, TSV, JSONL, Parquet). Empty list: the landing zone.
        config: Advanced settings: every configuration key, with its embedded default.
    """
    config = with_run_options(config, data_paths=data_paths)
    workspace = prepare_workspace(config)
    outcome = ingest_data(config, workspace)
    event_id = announce_new_data(outcome, workspace) if outcome.snapshot_changed else None
    if outcome.quarantined:
        check_data_gate(config, workspace, outcome)
    return {
        "snapshot_id": outcome.snapshot_id,
        "snapshot_changed": outcome.snapshot_changed,
        "new_files": outcome.new_files,
        "rows_added": outcome.rows_added,
        "event_id": event_id,
    }
