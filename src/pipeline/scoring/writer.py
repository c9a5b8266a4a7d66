"""Writing predictions chunk by chunk into a temporary file that is renamed into place only when complete."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from pipeline.atomic import fsync_directory

FORMATS = ("parquet", "csv")


def join_predictions(inputs: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """The input's columns, then the prediction columns; an input column with a prediction's name gets ``input_``."""
    renamed = {c: f"input_{c}" for c in inputs.columns if c in predictions.columns}
    left = inputs.rename(columns=renamed).reset_index(drop=True)
    return pd.concat([left, predictions.reset_index(drop=True)], axis=1)


class PredictionWriter:
    """Append frames; ``commit()`` renames the finished file to ``path``; ``abort()`` (or an error) leaves nothing."""

    def __init__(self, path: Path, file_format: str = "parquet"):
        if file_format not in FORMATS:
            raise ValueError(f"output format {file_format!r}: expected one of {', '.join(FORMATS)}")
        self.path, self.format = Path(path), file_format
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.tmp = Path(tmp)
        self.rows = 0
        self._parquet = None
        self._schema = None

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def write(self, frame: pd.DataFrame) -> None:
        if self.format == "csv":
            out = frame.copy()
            for column in ("top_labels", "top_scores"):
                if column in out.columns:
                    out[column] = out[column].map(json.dumps)
            out.to_csv(self.tmp, mode="a", header=self.rows == 0, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self.tmp, self._schema)
            elif table.schema != self._schema:
                try:
                    table = table.cast(self._schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                    raise ValueError(
                        f"rows {self.rows + 1}-{self.rows + len(frame)}: columns change type "
                        f"({exc}); write CSV or fix the input"
                    ) from exc
            self._parquet.write_table(table)
        self.rows += len(frame)

    def commit(self) -> Path:
        if self._parquet is not None:
            self._parquet.close()
        elif self.format == "parquet":
            raise ValueError("no rows to write")
        with open(self.tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.path)
        fsync_directory(self.path.parent)
        return self.path

    def abort(self) -> None:
        if self._parquet is not None:
            try:
                self._parquet.close()
            except Exception:  # closing a writer whose file is already broken: nothing more to save
                pass
        self.tmp.unlink(missing_ok=True)
