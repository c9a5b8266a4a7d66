"""How the data store records and sets aside what it refuses: ledger events, quarantine, conflict reports."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

from pipeline.data.ledger import Ledger
from pipeline.data.quarantine import quarantine_file
from pipeline.data.sources import (
    FileInfo,
)

logger = logging.getLogger(__name__)


def now_iso() -> str:
    """The current UTC time, to the second (ledger events)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Refusals:
    """Mixed into ``DataStore`` (needs ``workspace``, ``ledger`` and the landing zone's ``_in_landing``)."""

    # -- quarantine and reports -----------------------------------------------------------------
    @staticmethod
    def _record(
        ledger: Ledger,
        uri: str,
        sha: str | None,
        size: int,
        rows: int | None,
        status: str,
        snapshot: str | None,
        reason: str | None = None,
    ) -> None:
        ledger.add_event(
            {
                "time": now_iso(),
                "uri": uri,
                "sha256": sha,
                "size": size,
                "rows": rows,
                "status": status,
                "snapshot": snapshot,
                "reason": reason,
            }
        )

    def _quarantine(self, ledger: Ledger, uri: str, sha: str | None, info: FileInfo, report: dict) -> dict:
        """Quarantine the file (see ``quarantine.quarantine_file``) and record it in the ledger."""
        movable = self._in_landing(uri) and (
            self.workspace.data_is_remote
            or Path(uri).is_symlink()
            or Path(uri).resolve().is_relative_to(self._landing_roots()[1])
        )
        item = quarantine_file(self.workspace.quarantine, uri, sha, info.size, report, move=movable)
        if sha:
            ledger.put_file(
                {
                    "sha256": sha,
                    "uris": [uri],
                    "size": info.size,
                    "rows": None,
                    "status": "quarantined",
                    "snapshot": None,
                    "time": now_iso(),
                    "reason": report.get("rule"),
                    "report": item["report_json"],
                }
            )
        self._record(ledger, uri, sha, info.size, None, "quarantined", None, report.get("rule"))
        ledger.forget_seen(uri)
        logger.warning("quarantined %s: %s", uri, report.get("rule"))
        return {k: v for k, v in item.items() if k != "report_json"}

    def _write_conflict_report(self, error) -> str:
        folder = self.workspace.reports / "conflicts"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}-conflicts.csv"
        error.conflicts.to_csv(path, index=False)
        return str(path)
