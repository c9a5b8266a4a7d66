"""Where the workspace keeps its data: a local folder, or object storage through fsspec (``s3://``, ``gs://``…).

A local data root is a plain ``pathlib.Path`` and everything works as it always did. A remote one is a
``RemotePath``: the few path operations the landing zone, snapshots and quarantine need, on an fsspec file
system. Object stores have no rename and no folder, so writers there upload a finished local folder with the
file that makes it valid (a snapshot's ``manifest.json``) last, and readers trust only what the ledger names.
Listings are read fresh each time (other workers write to the same store).
Credentials come from the environment (``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``…) as fsspec reads them.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import fsspec


class RemotePath:
    """A file or prefix on an fsspec file system, with the ``pathlib`` operations the data store uses."""

    def __init__(self, fs, path: str):
        self.fs = fs
        self.path = path.rstrip("/")

    @classmethod
    def from_url(cls, url: str) -> RemotePath:
        fs, path = fsspec.core.url_to_fs(url)
        return cls(fs, path)

    def __truediv__(self, name: str) -> RemotePath:
        return RemotePath(self.fs, f"{self.path}/{str(name).strip('/')}")

    def __str__(self) -> str:
        return self.fs.unstrip_protocol(self.path)

    def __repr__(self) -> str:
        return f"RemotePath({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemotePath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def parent(self) -> RemotePath:
        return RemotePath(self.fs, str(PurePosixPath(self.path).parent))

    def fresh(self) -> RemotePath:
        """Forget the file system's cached listings of this path: another worker may have written since."""
        self.fs.invalidate_cache(self.path)
        return self

    def exists(self) -> bool:
        return self.fresh().fs.exists(self.path)

    def is_dir(self) -> bool:
        return self.fresh().fs.isdir(self.path)

    def is_symlink(self) -> bool:
        return False

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: an object store has no folders, a key's prefix exists once a key under it does."""

    def open(self, mode: str = "rb", **kwargs):
        return self.fs.open(self.path, mode, **kwargs)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.fs.cat_file(self.path).decode(encoding)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.fs.pipe_file(self.path, text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def iterdir(self):
        try:
            listed = self.fresh().fs.ls(self.path, detail=False)
        except FileNotFoundError:
            return
        for item in sorted(listed):
            yield RemotePath(self.fs, item)

    def glob(self, pattern: str):
        for item in sorted(self.fresh().fs.glob(f"{self.path}/{pattern}")):
            yield RemotePath(self.fs, item)


DataPath = Path | RemotePath


def is_remote_url(location: str | None) -> bool:
    """Whether ``location`` names object storage (a URL other than ``file://``), not a local folder."""
    if not location or "://" not in location:
        return False
    return not location.startswith(("file://", "local://"))


def data_root(storage: str | None, local_root: Path) -> DataPath:
    """The folder of landing zone, snapshots and quarantine: ``storage`` (a local folder or a URL), else
    ``local_root``."""
    if not storage:
        return local_root
    if is_remote_url(storage):
        return RemotePath.from_url(storage)
    return Path(storage.removeprefix("file://")).expanduser().resolve()


def is_remote(path) -> bool:
    return isinstance(path, RemotePath)


def readable(path: DataPath):
    """Something pyarrow and pandas read: the local path, or an open file on the remote store (closed when
    the reader is collected)."""
    return path.open("rb") if is_remote(path) else path


def as_data_path(location: str) -> DataPath:
    """A path string the data store wrote (a local path or an object-storage URL) as a path again."""
    return RemotePath.from_url(location) if is_remote_url(location) else Path(location)


def local_copy(path: DataPath, folder: Path) -> Path:
    """``path`` itself when local, else a download of it into ``folder`` (for readers that pass over it twice)."""
    if not is_remote(path):
        return path
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    path.fs.get_file(path.path, str(target))
    return target


def upload_folder(local: Path, remote: RemotePath, last: str) -> None:
    """Put every file of ``local`` under ``remote``, ``last`` after all others: a reader that finds ``last``
    finds a complete folder. Overwrites what a crashed upload left (the same content, by construction)."""
    names = sorted(p.name for p in local.iterdir() if p.is_file())
    for name in [n for n in names if n != last] + [last]:
        remote.fs.put_file(str(local / name), (remote / name).path)


def move_or_copy(source: str, target: DataPath, move: bool) -> None:
    """Copy ``source`` (any fsspec URL or local path) to ``target``; with ``move``, delete ``source`` after."""
    with fsspec.open(source, "rb") as src, target.open("wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    if move:
        fs, path = fsspec.core.url_to_fs(source)
        fs.rm_file(path)
