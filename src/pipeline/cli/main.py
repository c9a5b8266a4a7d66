"""The ``pipeline`` command line: run the flows, manage data, models and deployments.

Flow commands import ``flows.*`` lazily (that is where Prefect lives); the library stays Prefect-free.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import (
    ConfigOpt,
    JsonOpt,
    SetOpt,
    build_config,
    check_tracking,
    configure_logging,
    link_lines,
    run_flow,
    run_guard,
)
from pipeline.workspace import Workspace

app = typer.Typer(
    help="Continuous fine-tuning pipeline for transformer text classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def run(
    data: Annotated[
        list[str] | None, typer.Option("--data", "-d", help="File, folder or URL to ingest (repeatable).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the training flow end to end: ingest, validate, fine-tune, evaluate, register."""
    cfg = build_config(config, set_, data, as_json)
    check_tracking(cfg, as_json)
    configure_logging()
    with run_guard(cfg, as_json, "pipeline run"):
        result = run_flow("pipeline.flows.training", "training_flow", as_json, config=cfg)
    if as_json:
        keys = [
            "status",
            "run_id",
            "tracking_uri",
            "snapshot_id",
            "model_name",
            "model_version",
            "aliases",
            "metrics",
            "resumed_from_step",
            "gate",
            "training",
            "links",
        ]
        from pipeline.secrets import redact_credentials

        typer.echo(
            json.dumps(
                {**{k: result.get(k) for k in keys}, "tracking_uri": redact_credentials(result.get("tracking_uri"))},
                default=str,
            )
        )
    else:
        m = result["metrics"]
        typer.echo(
            f"registered {result['model_name']} v{result['model_version']} {result['aliases']} "
            f"accuracy={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f} (snapshot {result['snapshot_id']})"
        )
        for line in link_lines(result):
            typer.echo(line)


@app.command()
def retrain(config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    """Run the retraining flow once: train when enough new data arrived, else skip (for cron, no server needed).

    Exit codes: 0 trained or skipped, 1 failed, 2 bad configuration, 75 another run of the model is in progress.
    """
    cfg = build_config(config, set_, None, as_json)
    check_tracking(cfg, as_json)
    configure_logging()
    with run_guard(cfg, as_json, "pipeline retrain"):
        result = run_flow("pipeline.flows.retraining", "retraining_flow", as_json, config=cfg)
    if as_json:
        typer.echo(json.dumps(retrain_summary(result), default=str))
        return
    typer.echo(retrain_line(result))
    for line in link_lines(result.get("training") or {}):
        typer.echo(line)


def retrain_summary(result: dict) -> dict:
    """``status`` (trained or skipped), ``reason``, the new-data counts and, when trained, the training result."""
    training = result.get("training") or {}
    keys = [
        "status",
        "run_id",
        "snapshot_id",
        "model_name",
        "model_version",
        "aliases",
        "metrics",
        "gate",
        "training",
        "links",
    ]
    return {
        "status": result.get("status"),
        "reason": result.get("reason"),
        "new_rows": (result.get("new_data") or {}).get("rows"),
        "training": {k: training.get(k) for k in keys} if training else None,
    }


def retrain_line(result: dict) -> str:
    if result.get("status") != "trained":
        return f"skipped: {result.get('reason')}"
    t = result["training"]
    return (
        f"trained: registered {t['model_name']} v{t['model_version']} {t['aliases']} "
        f"on snapshot {t['snapshot_id']} ({result.get('reason')})"
    )


@app.command()
def demo(
    batch: Annotated[list[int] | None, typer.Option("--batch", "-b", help="Demo batch 1, 2 or 3 (repeatable).")] = None,
    to: Annotated[Path | None, typer.Option(help="Folder to write to (default: the landing zone).")] = None,
    rows: Annotated[int, typer.Option(help="Rows per batch.")] = 1200,
    config: ConfigOpt = None,
) -> None:
    """Write the generated demo data set (support-ticket topics) into the landing zone."""
    from pipeline.data.demo import write_demo_files

    cfg = build_config(config, None)
    folder = to or Workspace.for_config(cfg).ensure().landing
    if not isinstance(folder, Path):  # object storage: written here, then uploaded one file at a time
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            for path in write_demo_files(scratch, tuple(batch or (1, 2)), rows):
                folder.fs.put_file(str(path), (folder / path.name).path)
                typer.echo(str(folder / path.name))
        return
    for path in write_demo_files(folder, tuple(batch or (1, 2)), rows):
        typer.echo(str(path))


def _register_subcommands() -> None:
    """Each command group lives in its own module (``pipeline.cli_<group>``)."""
    from pipeline.cli import data as cli_data
    from pipeline.cli import models as cli_models
    from pipeline.cli import predict as cli_predict
    from pipeline.cli import serve as cli_serve
    from pipeline.cli import validate as cli_validate

    app.add_typer(cli_data.app, name="data")
    app.add_typer(cli_models.app, name="models")
    app.command("deploy")(cli_serve.deploy)
    app.command("serve", deprecated=True)(cli_serve.serve)
    app.command("validate")(cli_validate.validate)
    app.command("predict")(cli_predict.predict)


_register_subcommands()


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
