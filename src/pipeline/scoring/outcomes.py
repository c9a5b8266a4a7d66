"""What the scoring stage hands on: one outcome per file and one per run (small values, no behaviour)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class FileOutcome:
    uri: str
    status: str
    rows: int = 0
    output: str | None = None
    sha256: str | None = None
    label_counts: dict = field(default_factory=dict)
    mean_confidence: float | None = None
    drift: dict | None = None
    to_label: str | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ScoringOutcome:
    model_name: str
    model_version: str
    model_run_id: str | None
    model_uri: str
    files: list[FileOutcome] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    model_link: str | None = None
    precision: str | None = None  # what the model computed in: bf16 or fp32

    @property
    def scored(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "scored"]

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def drifted(self) -> list[FileOutcome]:
        return [f for f in self.scored if f.drift and f.drift.get("status") == "error"]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.scored)

    def to_dict(self) -> dict:
        return {**asdict(self), "rows": self.rows}
