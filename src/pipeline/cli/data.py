"""``pipeline data ...``: landing zone, ledger and snapshots."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOpt, JsonOpt, SetOpt, build_config, fail
from pipeline.config import PipelineConfig
from pipeline.workspace import Workspace

app = typer.Typer(help="Landing zone, ledger and snapshots.", no_args_is_help=True)


@app.command("ingest")
def data_ingest(
    paths: Annotated[
        list[str] | None,
        typer.Argument(help="Files, folders, fsspec URLs or hf:NAME[:CONFIG] (default: the landing zone)."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ingest new files into a snapshot, running the data contract on each (bad files are quarantined)."""
    from pipeline.data import steps as data_steps
    from pipeline.data.deduplication import ConflictError
    from pipeline.data.sources import IngestionError
    from pipeline.data.store import DataStoreBusy
    from pipeline.workspace import prepare_workspace

    cfg = build_config(config, set_, paths, as_json)
    workspace = prepare_workspace(cfg)
    try:
        outcome = data_steps.ingest_and_validate(cfg, workspace)
    except ConflictError as exc:
        fail(
            f"{exc} (all conflicting rows: {exc.report})",
            as_json,
            code=1,
            rule="label_conflicts",
            conflict_rows=len(exc.conflicts),
            report=exc.report,
        )
    except DataStoreBusy as exc:
        fail(str(exc), as_json, code=3, rule="busy")
    except IngestionError as exc:
        fail(str(exc), as_json, code=2, rule=exc.rule)
    payload = {k: v for k, v in outcome.to_dict().items() if k != "contracts"}
    if as_json:
        typer.echo(json.dumps(payload, default=str))
    else:
        typer.echo(
            f"snapshot {outcome.snapshot_id}: {len(outcome.new_files)} new, {len(outcome.skipped_files)} skipped, "
            f"{len(outcome.quarantined)} quarantined"
        )
        for item in outcome.quarantined:
            typer.echo(f"  quarantined {item['uri']}: {item['rule']} (report {item['report']})")
    if outcome.quarantined:
        raise typer.Exit(1)


@app.command("status")
def data_status(config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Current snapshot and files waiting to be ingested (cheap: size and mtime first, hashes only changed
    files, parses only pending ones). ``pending_rows`` counts the rows of the pending files that parse;
    ``unreadable`` lists those that would be quarantined."""
    from pipeline.data.sources import IngestionError
    from pipeline.data.store import DataStore

    cfg = build_config(config, set_, None, as_json)
    store = DataStore(Workspace.for_config(cfg), cfg.data)
    try:
        pending = store.pending(cfg.data.paths or None)
    except IngestionError as exc:
        fail(str(exc), as_json, code=2, rule=exc.rule)
    rows, unreadable = _count_rows(pending, cfg)
    payload = {
        "snapshot_id": store.ledger.head(),
        "pending_files": [p["uri"] for p in pending],
        "pending_rows": rows,
        "unreadable": unreadable,
    }
    typer.echo(
        json.dumps(payload)
        if as_json
        else f"snapshot {payload['snapshot_id']}; {len(pending)} pending files ({rows} rows)"
    )


def _count_rows(pending: list[dict], cfg: PipelineConfig) -> tuple[int, list[dict]]:
    if not pending:
        return 0, []
    from pipeline.data.readers import IngestionError, count_rows

    total, unreadable = 0, []
    for item in pending:
        try:
            total += count_rows(item["uri"], cfg.data)
        except IngestionError as exc:
            unreadable.append(exc.to_dict())
    return total, unreadable


@app.command("show")
def data_show(snapshot: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print a snapshot's manifest."""
    from pipeline.data.snapshots import load_snapshot

    cfg = build_config(config, None)
    try:
        manifest = load_snapshot(Workspace.for_config(cfg).snapshots, snapshot).manifest.to_dict()
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc), as_json)
    typer.echo(json.dumps(manifest, indent=None if as_json else 2, default=str))
