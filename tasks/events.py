"""Prefect events the pipeline emits; deployments trigger on them (see deployments/definitions.py)."""

from __future__ import annotations

from prefect import task
from prefect.events import emit_event

from pipeline.results import DataOutcome
from pipeline.workspace import Workspace

DATA_ARRIVED = "pipeline.data.arrived"
SNAPSHOT_RESOURCE_PREFIX = "pipeline.snapshot."


def snapshot_resource(snapshot_id: str, workspace: Workspace) -> dict[str, str]:
    """The event's resource: the snapshot, labeled with its workspace (triggers match on both)."""
    return {
        "prefect.resource.id": f"{SNAPSHOT_RESOURCE_PREFIX}{snapshot_id}",
        "prefect.resource.name": f"snapshot {snapshot_id}",
        "pipeline.snapshot-id": snapshot_id,
        "pipeline.workspace": str(workspace.root),
    }


@task(name="announce-new-data")
def announce_new_data(outcome: DataOutcome, workspace: Workspace) -> str | None:
    """Emit ``pipeline.data.arrived`` for a new snapshot; returns the event id (None when events are off)."""
    event = emit_event(
        DATA_ARRIVED,
        resource=snapshot_resource(outcome.snapshot_id, workspace),
        payload={"snapshot_id": outcome.snapshot_id, "rows_added": outcome.rows_added, "new_files": outcome.new_files},
    )
    return str(event.id) if event is not None else None
