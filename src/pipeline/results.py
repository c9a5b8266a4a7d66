"""What each stage hands to the next: small frozen values, no behaviour."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


class NoDataError(RuntimeError):
    """There is no labeled data to train on."""


@dataclass
class DataOutcome:
    snapshot_id: str | None
    new_files: list[str]
    skipped_files: list[dict]
    quarantined: list[dict]
    rows_added: int
    snapshot_changed: bool
    contracts: dict[str, dict] = field(default_factory=dict)
    duplicates_dropped: int = 0
    conflict_rows: int = 0
    net_rows_added: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)
