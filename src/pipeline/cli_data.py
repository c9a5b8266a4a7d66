"""``pipeline data ...``: landing zone, ledger and snapshots."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from pipeline.cli_common import ConfigOpt, JsonOpt, SetOpt, build_config, fail
from pipeline.config import PipelineConfig
from pipeline.workspace import Workspace

app = typer.Typer(help="Landing zone, ledger and snapshots.", no_args_is_help=True)


@app.command("ingest")
def data_ingest(paths: Annotated[Optional[list[str]], typer.Argument(help="Files, folders or URLs (default: landing zone).")] = None,
                config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Ingest new files into a snapshot, running the data contract on each (bad files are quarantined)."""
    from pipeline import steps

    cfg = build_config(config, set_, paths, as_json)
    workspace = steps.prepare_workspace(cfg)
    outcome = steps.ingest_and_validate(cfg, workspace)
    payload = {k: v for k, v in outcome.to_dict().items() if k != "contracts"}
    if as_json:
        typer.echo(json.dumps(payload, default=str))
    else:
        typer.echo(f"snapshot {outcome.snapshot_id}: {len(outcome.new_files)} new, {len(outcome.skipped_files)} skipped, "
                   f"{len(outcome.quarantined)} quarantined")
        for item in outcome.quarantined:
            typer.echo(f"  quarantined {item['uri']}: {item['rule']} (report {item['report']})")
    if outcome.quarantined:
        raise typer.Exit(1)


@app.command("status")
def data_status(config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Current snapshot and files waiting in the landing zone (cheap: hashes only changed files)."""
    from pipeline.datastore import DataStore

    cfg = build_config(config, set_, None, as_json)
    store = DataStore(Workspace.resolve(cfg.workspace), cfg.data)
    ledger = store.read_ledger()
    pending = store.pending(cfg.data.paths or None)
    payload = {"snapshot_id": ledger["head"], "pending_files": [p["uri"] for p in pending],
               "pending_rows": None if not pending else _count_rows(pending, cfg)}
    typer.echo(json.dumps(payload) if as_json else
               f"snapshot {payload['snapshot_id']}; {len(pending)} pending files ({payload['pending_rows']} rows)")


def _count_rows(pending: list[dict], cfg: PipelineConfig) -> int:
    from pipeline.ingestion import IngestionError, read_labeled_file

    total = 0
    for item in pending:
        try:
            total += len(read_labeled_file(item["uri"], cfg.data))
        except IngestionError:
            continue
    return total


@app.command("show")
def data_show(snapshot: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print a snapshot's manifest."""
    from pipeline.snapshots import load_snapshot

    cfg = build_config(config, None)
    try:
        manifest = load_snapshot(Workspace.resolve(cfg.workspace).snapshots, snapshot).manifest.to_dict()
    except FileNotFoundError as exc:
        fail(str(exc), as_json)
    typer.echo(json.dumps(manifest, indent=None if as_json else 2, default=str))
