"""Markdown tables for reports, artifacts and model cards."""

from __future__ import annotations


def markdown_table(rows: list[list] | list[dict], header: list[str]) -> str:
    """A Markdown table; dict rows are read by the header's keys. Pipes and newlines in cells are escaped."""
    if not rows:
        return "_none_\n"
    cells = [[row.get(c, "") for c in header] if isinstance(row, dict) else row for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in cells]
    return "\n".join(lines) + "\n"
