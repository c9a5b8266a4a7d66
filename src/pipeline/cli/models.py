"""``pipeline models ...``: registered versions, promotion, rollback and the audit history.

Every alias move is a compare-and-set under the registry lease (``pipeline.registry.aliases``) and is appended
to the model's audit history. Exit codes for scripts: 0 done, 1 other error, 2 unknown model/version
or refused input, 3 the alias moved since the caller looked, 4 the lease could not be had.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOpt, JsonOpt, SetOpt, build_config, fail
from pipeline.workspace import Workspace

app = typer.Typer(help="Registered model versions: list, promote, roll back, audit history.", no_args_is_help=True)

TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: config, then $MLFLOW_TRACKING_URI, then the workspace's SQLite).",
    ),
]
ReasonOpt = Annotated[str, typer.Option("--reason", "-r", help="Why: recorded in the audit history.")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Who (default: $PIPELINE_ACTOR, else user@host).")]


def _client(config, set_, tracking_uri: str | None, as_json: bool):
    from pipeline.registry import tracking as registry
    from pipeline.registry.connection import TrackingUnavailableError, check_tracking_server

    cfg = build_config(config, set_, None, as_json)
    uri = tracking_uri or Workspace.for_config(cfg).tracking_uri(cfg.tracking.tracking_uri)
    try:
        check_tracking_server(uri)
    except TrackingUnavailableError as exc:
        fail(str(exc), as_json, code=1)
    return registry.client(uri), cfg


def _run(as_json: bool, action):
    """Run ``action``; map registry errors to a one-line message and the documented exit code."""
    from mlflow.exceptions import MlflowException

    from pipeline.registry.aliases import AliasMovedError
    from pipeline.registry.lease import LockLostError, RegistryLockTimeout

    try:
        return action()
    except AliasMovedError as exc:
        fail(str(exc), as_json, code=3, current=exc.current, expected=exc.expected)
    except (RegistryLockTimeout, LockLostError) as exc:
        fail(str(exc), as_json, code=4)
    except (MlflowException, ValueError) as exc:
        fail(getattr(exc, "message", None) or str(exc), as_json, code=2)


def _echo_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max([len(c), *(len(str(r.get(c, ""))) for r in rows)]) for c in columns}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        typer.echo("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns).rstrip())


def version_rows(client, name: str) -> list[dict]:
    """One summary per version of ``name``, newest first (aliases read live from the registered model)."""
    by_version: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for v in client.search_model_versions(f"name='{name}'"):
        tags = v.tags
        rows.append(
            {
                "version": str(v.version),
                "aliases": ",".join(sorted(by_version.get(str(v.version), []))) or "-",
                "created": _when(v.creation_timestamp),
                "macro_f1": metric_of(client, v, "macro_f1"),
                "accuracy": metric_of(client, v, "accuracy"),
                "gate": tags.get("gate_outcome", "?"),
                "delta": tags.get("delta_macro_f1") or tags.get("delta_accuracy") or "-",
                "snapshot": (tags.get("snapshot_id") or "?")[:12],
                "run": (v.run_id or "?")[:12],
                "gate_reason": tags.get("gate_reason", ""),
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)


def metric_of(client, version, key: str) -> str:
    """A test metric of the version's logged model (versions registered before metrics moved there: its
    ``metric.<key>`` tag), or ``?``."""
    from pipeline.registry.tracking import model_id_of

    model_id = getattr(version, "model_id", None) or model_id_of(version.source)
    if model_id:
        try:
            for metric in client.get_logged_model(model_id).metrics or []:
                if metric.key == key:
                    return f"{metric.value:.6g}"
        except Exception:  # a version whose logged model is gone still lists
            pass
    return version.tags.get(f"metric.{key}", "?")


def _when(millis) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if millis else "?"


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Argument(help="Registered model; omit to list all models.")] = None,
    tracking_uri: TrackingOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Versions with aliases, key metrics and gate outcome (or every registered model)."""
    from pipeline.registry.lease import is_lock_model

    client, _ = _client(config, set_, tracking_uri, as_json)
    if name is None:
        models = [m for m in client.search_registered_models() if not is_lock_model(m)]
        rows = [
            {
                "name": m.name,
                "aliases": " ".join(f"{a}=v{v}" for a, v in sorted(m.aliases.items())) or "-",
                "updated": _when(m.last_updated_timestamp),
            }
            for m in models
        ]
        typer.echo(json.dumps(rows)) if as_json else _echo_table(rows, ["name", "aliases", "updated"])
        return
    rows = _run(as_json, lambda: version_rows(client, name))
    if as_json:
        typer.echo(json.dumps(rows))
    else:
        _echo_table(rows, ["version", "aliases", "created", "macro_f1", "accuracy", "delta", "gate", "snapshot", "run"])


@app.command("promote")
def promote(
    name: str,
    version: str,
    alias: Annotated[str, typer.Option("--alias", "-a", help="Alias to move.")] = "champion",
    expect_current: Annotated[
        str | None,
        typer.Option(
            "--expect-current",
            help="Version the alias must point to now ('none' = unset); refuse otherwise. "
            "Omitted: whatever it points to when the command starts.",
        ),
    ] = None,
    reason: ReasonOpt = "",
    actor: ActorOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Allow a version that failed the gate.")] = False,
    tracking_uri: TrackingOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Point ALIAS at VERSION by compare-and-set; refuses when the alias moved since the caller looked."""
    from pipeline.registry import aliases

    client, _ = _client(config, set_, tracking_uri, as_json)

    def act():
        target = client.get_model_version(name, version)
        if target.tags.get("gate_passed") == "False" and alias == aliases.CHAMPION and not force:
            raise ValueError(
                f"{name} version {version} failed the gate ({target.tags.get('gate_reason', '?')}); "
                "pass --force to promote it anyway"
            )
        expected = (
            aliases.alias_version(client, name, alias)
            if expect_current is None
            else (None if expect_current.lower() in ("none", "") else expect_current)
        )
        return aliases.move_alias(
            client,
            name,
            alias,
            version,
            expect_current=expected,
            actor=actor,
            reason=reason,
            action="promote",
            details={"forced": True} if force else None,
        )

    entry = _run(as_json, act)
    if entry.get("unchanged"):
        typer.echo(
            json.dumps({"status": "unchanged", **entry})
            if as_json
            else f"{name}@{alias} already points to version {entry['to']}; nothing moved"
        )
        return
    typer.echo(
        json.dumps({"status": "moved", **entry})
        if as_json
        else f"{name}@{alias}: {_version(entry['from'])} -> version {entry['to']} (audit #{entry['seq']})"
    )


@app.command("rollback")
def rollback(
    name: str,
    reason: ReasonOpt = "",
    actor: ActorOpt = None,
    tracking_uri: TrackingOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move champion back to the previous champion (from the audit history)."""
    from pipeline.registry import aliases

    client, _ = _client(config, set_, tracking_uri, as_json)
    entry = _run(as_json, lambda: aliases.rollback_champion(client, name, actor=actor, reason=reason))
    typer.echo(
        json.dumps({"status": "moved", **entry})
        if as_json
        else f"{name}@champion rolled back: {_version(entry['from'])} -> version {entry['to']} (audit #{entry['seq']})"
    )


@app.command("history")
def history(
    name: str, tracking_uri: TrackingOpt = None, config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False
) -> None:
    """Every recorded alias move: who, when, from, to, why (and moves made outside the pipeline)."""
    from pipeline.registry import aliases

    client, _ = _client(config, set_, tracking_uri, as_json)
    entries = _run(as_json, lambda: aliases.read_history(client, name))
    notes = aliases.untracked_moves(client, name, entries)
    if as_json:
        typer.echo(json.dumps({"entries": entries, "untracked": notes}))
        return
    rows = [
        {
            "#": e["seq"],
            "when": e["at"],
            "alias": e["alias"],
            "from": _version(e["from"], short=True),
            "to": f"v{e['to']}",
            "action": e["action"],
            "who": e["actor"],
            "why": e["reason"],
        }
        for e in entries
    ]
    _echo_table(rows, ["#", "when", "alias", "from", "to", "action", "who", "why"])
    for note in notes:
        typer.echo(f"note: {note}")


@app.command("show")
def show(
    name: str,
    version: str,
    tracking_uri: TrackingOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a version's model card (its description) and tags."""
    client, _ = _client(config, set_, tracking_uri, as_json)
    found = _run(as_json, lambda: client.get_model_version(name, version))
    if as_json:
        typer.echo(json.dumps({"version": str(found.version), "description": found.description, "tags": found.tags}))
    else:
        typer.echo(found.description or "(no description)")


def _version(value, short: bool = False) -> str:
    if value is None:
        return "-" if short else "unset"
    return f"v{value}" if short else f"version {value}"
