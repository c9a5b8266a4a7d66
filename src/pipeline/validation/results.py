"""What the data contract reports: the result of a run, its error, and how examples are shown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

EXAMPLES = 5


class DataValidationError(RuntimeError):
    """Error-level expectations failed. ``result`` is the ContractResult, for reports and tests."""

    def __init__(self, result: ContractResult, source: str | None = None):
        self.result = result
        self.source = source
        super().__init__(result.summary(source))


@dataclass
class ContractResult:
    success: bool
    failures: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    rows: int = 0
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    suite: str | None = None
    docs_page: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> ContractResult:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self, source: str | None = None) -> str:
        """One line: the first failed rule, its observed value and example rows."""
        where = f"{source}: " if source else ""
        if self.success:
            return f"{where}data contract passed ({len(self.checks)} checks, {len(self.warnings)} warnings)"
        first = self.failures[0]
        others = [f["rule"] for f in self.failures[1:]]
        more = f" (also failed: {', '.join(others)})" if others else ""
        examples = "; ".join(format_example(e, width=80) for e in first.get("examples", [])[:3]) or "no example rows"
        return f"{where}data contract failed: rule {first['rule']} observed {first['observed']}; e.g. {examples}{more}"

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self, title: str = "Data contract") -> str:
        status = "PASSED" if self.success else "FAILED"
        lines = [
            f"## {title}: {status}",
            "",
            f"{self.rows} rows, {len(self.checks)} checks, {len(self.failures)} failed, {len(self.warnings)} warnings"
            + (f" (suite `{self.suite}`)" if self.suite else ""),
            "",
        ]
        lines += [f"- {note}" for note in self.notes] + ([""] if self.notes else [])
        lines += ["| rule | column | severity | result | observed | examples |", "|---|---|---|---|---|---|"]
        for check in self.checks:
            examples = "<br>".join(format_example(e, width=60) for e in check["examples"][:3])
            cells = [
                check["rule"],
                check["column"] or "",
                check["severity"],
                "pass" if check["success"] else "**FAIL**",
                str(check["observed"]),
                examples,
            ]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        if self.skipped:
            lines += ["", "Skipped: " + "; ".join(f"{s['rule']} ({s['reason']})" for s in self.skipped)]
        if self.docs_page:
            lines += ["", f"Data Docs: `{self.docs_page}`"]
        return "\n".join(lines) + "\n"


def combine_results(results: list[ContractResult]) -> ContractResult:
    """One result holding the checks of several suites (batch and snapshot)."""
    merged = ContractResult(success=all(r.success for r in results), rows=results[0].rows if results else 0)
    for result in results:
        merged.failures += result.failures
        merged.warnings += result.warnings
        merged.checks += result.checks
        merged.skipped += result.skipped
        merged.notes += result.notes
        merged.docs_page = merged.docs_page or result.docs_page
    merged.suite = ", ".join(r.suite for r in results if r.suite) or None
    return merged


def format_example(example: dict, width: int | None = None) -> str:
    """``row 4 of bad.csv: '   ' (label 'account')`` for a text row (text cut to ``width`` characters),
    ``key=value`` pairs otherwise."""
    if "text" in example:
        source = Path(str(example.get("source") or "")).name
        where = f"row {example.get('row')}" + (f" of {source}" if source else "")
        text = example["text"]
        if width and isinstance(text, str) and len(text) > width:
            text = text[: width - 1] + "…"
        return f"{where}: {text!r} (label {example.get('label')!r})"
    return ", ".join(f"{k}={v}" for k, v in example.items())
