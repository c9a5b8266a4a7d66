"""Atomic writes: build under a temporary name in the same folder, flush to disk, then rename into place.

A crash at any moment leaves either the old state or the new one, never a half-written file or folder
under the final name (leftover temporary names start with a dot and are ignored and cleaned up).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s bytes to disk (before renaming it into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, then each folder's entries (deepest first), so a rename of
    ``folder`` that follows publishes complete contents."""
    for child in folder.rglob("*"):
        if child.is_file() and not child.is_symlink():
            fsync_file(child)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        fsync_directory(sub)
    fsync_directory(folder)


def replace_durably(source: Path, target: Path) -> None:
    """``os.replace`` a fully flushed file or folder onto ``target`` and flush the folder holding it."""
    if Path(source).is_dir():
        fsync_tree(Path(source))
    else:
        fsync_file(Path(source))
    os.replace(source, target)
    fsync_directory(Path(target).parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the workspace is meant to be readable by its readers
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final``; on success rename it to ``final``, else delete it.

    ``final`` must not exist yet (renaming onto a non-empty folder fails rather than merging).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    os.chmod(staging, 0o755)  # mkdtemp makes 0700
    try:
        yield staging
        fsync_tree(staging)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_directory(final.parent)
