"""A strict reader of CSV and TSV files: every record is kept as written or the file is refused.

Quoting follows RFC 4180 and never guesses:

- a field that starts with ``"`` is quoted: it may span lines and holds ``""`` for a quote, and it must
  end with ``"`` followed by the delimiter or the end of the line. A quote that never closes, or text
  after the closing quote (``"great" movie``), is refused as ``unbalanced_quote`` with the line where
  the field opened (a lax reader would swallow the following lines into one row, or drop the quotes).
- a field that does not start with ``"`` is taken literally, quotes included (``he said "hi"``).
- a record with more or fewer fields than the header is refused as ``malformed_rows``.
- a quoted text spanning lines whose inner lines look like records of the file (delimiter, then one
  of the file's labels) is refused as ``swallowed_records``: the quote that opened it was most likely
  never meant to be closed there, and the row count would differ from the records written.

``data.quoting: none`` reads every field literally (no quoting at all), for exports that never quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice

import fsspec
import pandas as pd

from pipeline.data.sources import IngestionError

MAX_SUSPECTS = 1000
MAX_LABELS_TRACKED = 100_000


def _csv_reader(handle, delimiter: str, quoting: str):
    if quoting == "none":
        return csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=True)
    return csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)


def _quote_error(uri: str, error: csv.Error, row: int, line: int, at_eof: bool) -> IngestionError:
    if at_eof or "end of data" in str(error):
        message = (
            "a quoted field opens here and its closing quote never comes: quote the whole field and write "
            'inner quotes twice (""), or remove the stray quote'
        )
    else:
        message = (
            f"text follows a closing quote ({error}): a field that starts with a quote must end with one. "
            'Quote the whole field and double its inner quotes ("""great"" movie"), '
            "or set data.quoting: none for files that never quote"
        )
    return IngestionError(uri, "unbalanced_quote", message, row=row, line=line)


def _swallow_suspects(record: list[str], delimiter: str, fields: int, label_index: int) -> list[str]:
    """Values at the label position of inner lines of multi-line fields that look like whole records."""
    found = []
    for value in record:
        if "\n" not in value and "\r" not in value:
            continue
        for inner in value.splitlines():
            parts = inner.split(delimiter)
            if len(parts) == fields and '"' not in inner:
                found.append(parts[label_index].strip())
    return found


@contextmanager
def _open_text(uri: str, encoding: str):
    """A text stream for the csv module: the builtin ``open`` for a local uncompressed file (fsspec's
    wrappers cost a Python call per line, about 3x the parse), fsspec otherwise."""
    fs, path = fsspec.core.url_to_fs(uri)
    local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
    if local and fsspec.utils.infer_compression(path) is None:
        with open(path, encoding=encoding, newline="", buffering=1 << 20) as handle:
            yield handle
        return
    with fsspec.open(uri, "rb", compression="infer") as raw:
        yield io.TextIOWrapper(
            raw if hasattr(raw, "readinto") else io.BufferedReader(raw), encoding=encoding, newline=""
        )


def _to_frame(records: list[list[str]], columns: list[str]) -> pd.DataFrame:
    """Strings, an empty field missing (NaN), so the reader's vectorised string paths apply."""
    frame = pd.DataFrame(records, columns=columns, dtype="str")
    for column in frame.columns:
        values = frame[column]
        frame[column] = values.where(values != "")
    return frame


def _read_header(reader, uri: str) -> list[str]:
    try:
        return next(reader)
    except StopIteration:
        raise pd.errors.EmptyDataError("no header") from None
    except csv.Error as exc:
        raise _quote_error(uri, exc, None, 1, True) from exc


def iter_delimited(
    uri: str, delimiter: str, encoding: str, chunk_rows: int, label_column: str, quoting: str = "strict"
) -> Iterator[pd.DataFrame]:
    """Frames of the file's columns (strings; an empty field is missing), ``chunk_rows`` records at a time.

    Raises IngestionError (rules above; ``row`` is the record, ``line`` the physical line, header
    included) possibly after some frames were yielded. Blank lines are skipped. Chunks are parsed at the
    csv module's speed; only when something is wrong is the file scanned record by record to name the
    line (``_raise_first_problem``).
    """
    with _open_text(uri, encoding) as handle:
        reader = _csv_reader(handle, delimiter, quoting)
        header = _read_header(reader, uri)
        fields = len(header)
        label_index = header.index(label_column) if label_column in header else None
        unique = len(set(header)) == fields
        columns = header if unique else list(dict.fromkeys(header))
        positions = None if unique else [header.index(name) for name in columns]
        labels: set[str] = set()
        suspects: list[str] = []
        rows = 0
        while True:
            try:
                records = [record for record in islice(reader, chunk_rows) if record]
            except csv.Error:
                _raise_first_problem(uri, delimiter, encoding, label_column, quoting)
                raise
            if not records:
                break
            if any(length != fields for length in set(map(len, records))):
                _raise_first_problem(uri, delimiter, encoding, label_column, quoting)
            if positions is not None:
                records = [[record[p] for p in positions] for record in records]
            frame = _to_frame(records, columns)
            rows += len(frame)
            if label_index is not None and len(suspects) < MAX_SUSPECTS:
                suspects += _chunk_suspects(frame, delimiter, fields, label_index)
            _track_labels(labels, frame, label_column)
            yield frame
            if len(records) < chunk_rows:
                break
        if rows == 0:
            yield _to_frame([], columns)
        if any(value in labels for value in suspects if value):
            _raise_first_problem(uri, delimiter, encoding, label_column, quoting)


def _chunk_suspects(frame: pd.DataFrame, delimiter: str, fields: int, label_index: int) -> list[str]:
    """``_swallow_suspects`` of the chunk's records that hold a line break (found vectorised)."""
    multiline = None
    for column in frame.columns:
        found = frame[column].str.contains("\n|\r", regex=True, na=False)
        multiline = found if multiline is None else multiline | found
    if multiline is None or not multiline.any():
        return []
    out = []
    for record in frame[multiline.to_numpy()].itertuples(index=False):
        out += _swallow_suspects([v if isinstance(v, str) else "" for v in record], delimiter, fields, label_index)
    return out


def _raise_first_problem(uri: str, delimiter: str, encoding: str, label_column: str, quoting: str) -> None:
    """Scan the file record by record and raise the IngestionError of its first problem, with its line."""
    with _open_text(uri, encoding) as handle:
        reader = _csv_reader(handle, delimiter, quoting)
        header = _read_header(reader, uri)
        fields = len(header)
        label_index = header.index(label_column) if label_column in header else None
        labels: set[str] = set()
        suspects: list[tuple[str, int, int]] = []
        row = 0
        while True:
            start = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise _quote_error(uri, exc, row + 1, start, at_eof="end of data" in str(exc)) from exc
            if not record:
                continue
            row += 1
            if len(record) != fields:
                raise IngestionError(
                    uri,
                    "malformed_rows",
                    f"expected {fields} fields (as in the header), found {len(record)}",
                    row=row,
                    line=start,
                )
            if label_index is not None:
                if len(labels) < MAX_LABELS_TRACKED:
                    labels.add(record[label_index].strip())
                if reader.line_num > start and len(suspects) < MAX_SUSPECTS:
                    suspects += [(v, row, start) for v in _swallow_suspects(record, delimiter, fields, label_index)]
        _check_swallowed(uri, suspects, labels, row)


def _track_labels(labels: set[str], frame: pd.DataFrame, label_column: str) -> None:
    """Remember the file's distinct labels (up to ``MAX_LABELS_TRACKED``) for ``swallowed_records``."""
    if label_column in frame and len(labels) < MAX_LABELS_TRACKED:
        labels.update(str(value).strip() for value in pd.unique(frame[label_column].dropna()))


def _check_swallowed(uri: str, suspects: list[tuple[str, int, int]], labels: set[str], rows: int) -> None:
    swallowed = [(value, r, line) for value, r, line in suspects if value and value in labels]
    if swallowed:
        value, r, line = swallowed[0]
        raise IngestionError(
            uri,
            "swallowed_records",
            f"a quoted field opened here spans lines that look like records of their own (one ends with the "
            f"label {value!r}): {len(swallowed)} such line(s), so the file holds more records than the {rows} "
            "read. Close or remove the opening quote",
            row=r,
            line=line,
        )
