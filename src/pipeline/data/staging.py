"""Files of a batch parsed and staged as Parquet parts, waiting for the contract and the commit."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StagedFile:
    """A parsed file waiting for commit; its rows live in the Parquet file ``path``, not in memory."""

    uri: str
    sha256: str
    size: int
    mtime: float | None
    path: Path
    rows: int

    @property
    def frame(self):
        """All rows as a DataFrame (text, label, source, row; missing values None). Reads ``path`` each time."""
        import pandas as pd

        return missing_as_none(pd.read_parquet(self.path))


def missing_as_none(frame):
    """``frame`` with its text and label columns as Python objects, a missing value as None (what the data
    contract expects of staged rows)."""
    for column in ("text", "label"):
        if column in frame.columns:
            values = frame[column].astype(object)
            frame[column] = values.where(values.notna(), None)
    return frame


@dataclass
class StagedBatch:
    files: list[StagedFile] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    folder: Path | None = None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def frame(self):
        import pandas as pd

        if not self.files:
            return pd.DataFrame(columns=["text", "label", "source", "row"])
        return pd.concat([f.frame for f in self.files], ignore_index=True)

    def discard(self) -> None:
        """Delete the parsed parts (after commit, or when the batch is abandoned)."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
