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

import fsspec
import pandas as pd

from pipeline.data.sources import IngestionError

MAX_SUSPECTS = 1000
MAX_LABELS_TRACKED = 100_000


class _LineCounter:
    """Wraps a text stream; counts the physical lines handed to the csv module."""

    def __init__(self, handle: io.TextIOBase):
        self.handle = handle
        self.lines = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.handle.readline()
        if not line:
            raise StopIteration
        self.lines += 1
        return line


def _csv_reader(counter: _LineCounter, delimiter: str, quoting: str):
    if quoting == "none":
        return csv.reader(counter, delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=True)
    return csv.reader(counter, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)


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


def iter_delimited(
    uri: str, delimiter: str, encoding: str, chunk_rows: int, label_column: str, quoting: str = "strict"
) -> Iterator[pd.DataFrame]:
    """Frames of the file's columns (strings; an empty field is None), ``chunk_rows`` records at a time.

    Raises IngestionError (rules above; ``row`` is the record, ``line`` the physical line, header
    included) possibly after some frames were yielded. Blank lines are skipped.
    """
    with fsspec.open(uri, "rt", compression="infer", encoding=encoding, newline="") as handle:
        counter = _LineCounter(handle)
        reader = _csv_reader(counter, delimiter, quoting)
        try:
            header = next(reader)
        except StopIteration:
            raise pd.errors.EmptyDataError("no header") from None
        except csv.Error as exc:
            raise _quote_error(uri, exc, None, 1, counter.lines <= 1) from exc
        columns = list(dict.fromkeys(header))
        positions = [header.index(name) for name in columns]
        fields = len(header)
        label_index = header.index(label_column) if label_column in header else None
        labels: set[str] = set()
        suspects: list[tuple[str, int, int]] = []
        records: list[list] = []
        row = 0
        while True:
            start = counter.lines + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise _quote_error(uri, exc, row + 1, start, at_eof=not handle.readline()) from exc
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
                if len(suspects) < MAX_SUSPECTS and counter.lines > start:
                    suspects += [
                        (value, row, start) for value in _swallow_suspects(record, delimiter, fields, label_index)
                    ]
            records.append([record[p] or None for p in positions])
            if len(records) == chunk_rows:
                yield pd.DataFrame(records, columns=columns, dtype=object)
                records = []
        if records or row == 0:
            yield pd.DataFrame(records, columns=columns, dtype=object)
        swallowed = [(value, r, line) for value, r, line in suspects if value and value in labels]
        if swallowed:
            value, r, line = swallowed[0]
            raise IngestionError(
                uri,
                "swallowed_records",
                f"a quoted field opened here spans lines that look like records of their own (one "
                f"ends with the label {value!r}): {len(swallowed)} such line(s), so the file holds "
                f"more records than the {row} read. Close or remove the opening quote",
                row=r,
                line=line,
            )
