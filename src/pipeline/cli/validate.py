"""``pipeline validate FILE [--json]``: run the data contract on a file without ingesting it.

Exit 0 when no error-level expectation fails (warnings allowed), 1 when one does or the file cannot be
read, 2 for a bad configuration. Registered as a top-level command by ``cli._register_subcommands``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.common import ConfigOpt, JsonOpt, SetOpt, build_config, fail
from pipeline.workspace import Workspace

DocsOpt = Annotated[
    bool, typer.Option("--docs", help="Also write Great Expectations Data Docs under the workspace's reports/.")
]


def validate(
    file: Annotated[str, typer.Argument(help="Labeled file (CSV, TSV, JSONL, Parquet; local path or fsspec URL).")],
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: JsonOpt = False,
    docs: DocsOpt = False,
) -> None:
    """Check FILE against the data contract (and the current snapshot, if the workspace has one); ingest nothing."""
    from pipeline.data.readers import IngestionError
    from pipeline.validation import steps as validation_steps
    from pipeline.validation.data_docs import DataDocs
    from pipeline.validation.results import ContractResult

    cfg = build_config(config, set_, None, as_json)
    workspace = Workspace.for_config(cfg)
    try:
        result = validation_steps.validate_file(
            cfg, workspace, file, DataDocs.in_reports(workspace.reports) if docs else None
        )
    except IngestionError as exc:
        examples = [{"source": file, "row": exc.row, "line": exc.line}] if exc.row or exc.line else []
        where = ", ".join(f"{k} {v}" for k, v in (("row", exc.row), ("line", exc.line)) if v is not None)
        failure = {
            "rule": exc.rule,
            "column": None,
            "severity": "error",
            "success": False,
            "observed": f"{where}: {exc.message}" if where else exc.message,
            "examples": examples,
            "description": "the file must be readable labeled text",
        }
        result = ContractResult(success=False, failures=[failure], checks=[failure])
    except (FileNotFoundError, ValueError) as exc:
        fail(f"cannot load the expectation suite: {exc}", as_json, code=2)
    if as_json:
        keys = ("rule", "observed", "examples", "severity", "column", "description")
        typer.echo(
            json.dumps(
                {
                    "success": result.success,
                    "file": file,
                    "rows": result.rows,
                    "failures": [{k: f.get(k) for k in keys} for f in result.failures],
                    "warnings": [{k: w.get(k) for k in keys} for w in result.warnings],
                    "skipped": result.skipped,
                    "notes": result.notes,
                    "data_docs": result.docs_page,
                },
                default=str,
            )
        )
    else:
        typer.echo(render_text(file, result))
    raise typer.Exit(0 if result.success else 1)


def render_text(file: str, result) -> str:
    """The report a person reads in a terminal: failures first with example rows, then the rest."""
    from pipeline.validation.results import format_example

    status = "PASSED" if result.success else "FAILED"
    lines = [
        f"{Path(file).name}: data contract {status} ({result.rows} rows; {len(result.checks)} checks, "
        f"{len(result.failures)} failed, {len(result.warnings)} warnings)"
    ]
    order = {"error": 0, "warning": 1}
    checks = sorted(result.checks, key=lambda c: (c["success"], order.get(c["severity"], 2)))
    width = max((len(c["rule"]) for c in checks), default=10)
    for check in checks:
        mark = "ok  " if check["success"] else ("FAIL" if check["severity"] == "error" else "WARN")
        lines.append(f"  {mark}  {check['rule']:<{width}}  {check['severity']:<7}  {check['observed']}")
        if not check["success"]:
            lines += [
                f"        {format_example({k: v for k, v in e.items() if k != 'source'}, width=100)}"
                for e in check["examples"][:3]
            ]
    if result.skipped:
        lines.append("  skipped: " + "; ".join(f"{s['rule']} ({s['reason']})" for s in result.skipped))
    lines += [f"  note: {note}" for note in result.notes]
    if result.docs_page:
        lines.append(f"  Data Docs: {result.docs_page}")
    return "\n".join(lines)
