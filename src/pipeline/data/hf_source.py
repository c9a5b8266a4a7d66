"""Hugging Face ``datasets`` as a source: ``hf:NAME[:CONFIG]``.

NAME is a hub id (needs the hub or a filled cache), a local folder that ``datasets.load_dataset`` reads
(data files, optionally with a dataset card that declares configs), or a folder written by
``save_to_disk`` (read with ``load_from_disk``). The split comes from ``data.hf_split`` (``train`` by
default; ``train+validation`` joins splits). ``ClassLabel`` labels become their names; ``-1`` (no
label) becomes a missing label that the data contract rejects. The content hash is taken over the
(text, label) rows, so re-publishing the same rows is not new data and any edited row is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from pipeline.config import DataConfig
from pipeline.data.sources import IngestionError, parse_hf_uri


def _is_saved_to_disk(folder: Path) -> bool:
    return folder.is_dir() and ((folder / "state.json").exists() or (folder / "dataset_dict.json").exists())


def load_hf_dataset(uri: str, split: str, cache_dir: str | Path | None = None):
    """The ``datasets.Dataset`` behind ``uri`` for ``split``; raises IngestionError when it cannot be loaded."""
    import datasets

    name, config_name = parse_hf_uri(uri)
    local = Path(name).expanduser()
    try:
        if _is_saved_to_disk(local):
            loaded = datasets.load_from_disk(str(local))
            if not isinstance(loaded, datasets.DatasetDict):
                return loaded
            parts = [part.strip() for part in split.split("+")]
            missing = [part for part in parts if part not in loaded]
            if missing:
                raise IngestionError(uri, "missing_split", f"no split {', '.join(missing)}; found {', '.join(loaded)}")
            return datasets.concatenate_datasets([loaded[part] for part in parts])
        # The datasets cache misses edits to a local folder whose card declares configs: rebuild local
        # folders every time so that changed files are seen as changed content.
        fresh = {"download_mode": "force_redownload", "verification_mode": "no_checks"} if local.is_dir() else {}
        return datasets.load_dataset(
            name, config_name, split=split, cache_dir=str(cache_dir) if cache_dir else None, **fresh
        )
    except IngestionError:
        raise
    except FileNotFoundError as exc:
        raise IngestionError(uri, "not_found", f"no such dataset: {exc}") from exc
    except (OSError, ValueError, KeyError, ConnectionError, datasets.exceptions.DatasetsError) as exc:
        raise IngestionError(uri, "unreadable", f"{type(exc).__name__}: {exc}") from exc


def iter_hf_frames(uri: str, config: DataConfig, chunk_rows: int, cache_dir: str | Path | None = None) -> Iterator:
    """Raw pandas frames of the text and label columns (whichever exist), ``chunk_rows`` rows at a time.

    An empty dataset yields one empty frame so that callers can still check its columns.
    """
    import datasets
    import pandas as pd

    dataset = load_hf_dataset(uri, config.hf_split, cache_dir)
    wanted = [c for c in dict.fromkeys((config.text_column, config.label_column)) if c in dataset.column_names]
    if not wanted:
        yield pd.DataFrame(columns=dataset.column_names)
        return
    dataset = dataset.select_columns(wanted)
    feature = dataset.features.get(config.label_column)
    names = feature.names if isinstance(feature, datasets.ClassLabel) else None
    if dataset.num_rows == 0:
        yield pd.DataFrame(columns=wanted)
        return
    for frame in dataset.to_pandas(batched=True, batch_size=chunk_rows):
        if names is not None:
            frame[config.label_column] = frame[config.label_column].map(
                lambda i: names[i] if i is not None and 0 <= i < len(names) else None
            )
        yield frame


def hf_sha256(uri: str, config: DataConfig, cache_dir: str | Path | None = None) -> str:
    """SHA-256 of the dataset's (text, label) rows in order: changes exactly when its labeled content does."""
    digest = hashlib.sha256(b"hf-rows-v1\n")
    for frame in iter_hf_frames(uri, config, config.chunk_rows, cache_dir):
        pairs = frame.reindex(columns=[config.text_column, config.label_column])
        for text, label in pairs.itertuples(index=False, name=None):
            digest.update(json.dumps([text, label], default=str).encode() + b"\n")
    return digest.hexdigest()
