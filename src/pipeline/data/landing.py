"""The landing zone side of the data store: which files are there, which are new, and which may be read."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import fsspec

from pipeline.data.ledger import Ledger
from pipeline.data.quarantine import is_local
from pipeline.data.sources import (
    FileInfo,
    IngestionError,
    check_source_allowed,
    file_sha256,
    is_hf_uri,
    is_supported,
    stat_file,
)

logger = logging.getLogger(__name__)


def _walk_local(folder: str) -> list[str]:
    """Files under a local folder, recursively, sorted; hidden files left out; a symlinked folder is reported
    and not followed. ``os.walk`` reads each folder once (no per-file stat), which keeps a landing zone of
    thousands of files quick to list."""
    found = []
    for parent, folders, files in os.walk(folder):
        for name in folders:
            if os.path.islink(os.path.join(parent, name)):
                logger.warning("not following symlinked folder %s", os.path.join(parent, name))
        found += [os.path.join(parent, name) for name in files if not name.startswith(".")]
    return sorted(found)


class LandingZone:
    """Discovery and new-file detection; mixed into ``DataStore`` (needs ``workspace``, ``config``, ``ledger``)."""

    # -- discovery ------------------------------------------------------------------------------
    def discover(self, paths: list[str] | None = None) -> list[str]:
        """Supported files under the given paths, URLs or ``hf:`` sources (folders recursively), else
        under the landing zone. Local paths come back absolute with ``..`` resolved; hidden files and
        symlinked folders are not followed."""
        landing = str(self.workspace.landing)
        roots = list(paths or []) or [landing]
        found: list[str] = []
        for root in roots:
            if root == landing and self.workspace.data_is_remote:
                # the operator's own storage, not a typed source: no allow-list; empty until a file arrives
                found += sorted(str(p) for p in self._remote_landing_files() if is_supported(p.path))
                continue
            check_source_allowed(root, self.config.allowed_url_schemes, self.config.allowed_url_hosts)
            if is_hf_uri(root):
                found.append(root)
                continue
            fs, path = fsspec.core.url_to_fs(root)
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            local = protocol in ("file", "local")
            if local:
                path = os.path.abspath(path)
            if local and os.path.isdir(path) and not any(ch in path for ch in "*?["):
                found += [uri for uri in _walk_local(path) if is_supported(uri)]
                continue
            if any(ch in path for ch in "*?["):
                matches = sorted(fs.glob(path))
            elif fs.isdir(path):
                matches = sorted(p for p in fs.find(path) if not Path(p).name.startswith("."))
            elif fs.exists(path):
                matches = [path]
            else:
                raise IngestionError(root, "not_found", "no such file, folder or URL")
            for match in matches:
                uri = os.path.abspath(match) if local else fs.unstrip_protocol(match)
                if local and Path(uri).is_symlink() and Path(uri).is_dir():
                    logger.warning("not following symlinked folder %s", uri)
                elif is_supported(uri):
                    found.append(uri)
        return found

    def _remote_landing_files(self):
        landing = self.workspace.landing
        try:
            keys = landing.fresh().fs.find(landing.path)
        except FileNotFoundError:
            return []
        return [landing / key[len(landing.path) :] for key in keys if not Path(key).name.startswith(".")]

    def _landing_roots(self) -> tuple[Path, Path]:
        landing = self.workspace.landing
        return Path(os.path.abspath(landing)), landing.resolve()

    def _in_landing(self, uri: str) -> bool:
        if self.workspace.data_is_remote:
            return uri.startswith(str(self.workspace.landing) + "/")
        if not is_local(uri):
            return False
        path = Path(os.path.abspath(uri))
        return any(path.is_relative_to(root) for root in self._landing_roots())

    def _refuse_escaping_link(self, uri: str) -> str | None:
        """A reason to refuse a landing-zone path that resolves outside the landing zone, else None."""
        if self.workspace.data_is_remote or not self._in_landing(uri):
            return None
        target = Path(uri).resolve()
        real_landing = self._landing_roots()[1]
        if not target.is_relative_to(real_landing):
            return f"symbolic link to {target}, outside the landing zone {real_landing}"
        return None

    def _content_hash(self, uri: str) -> str:
        if is_hf_uri(uri):
            from pipeline.data.readers import content_sha256

            return content_sha256(uri, self.config, self.workspace.cache / "datasets")
        return file_sha256(uri)

    def _fingerprint(self, info: FileInfo, ledger: Ledger, seen: dict | None = None) -> str:
        seen = ledger.seen(info.uri) if seen is None else seen
        if seen and seen["size"] == info.size and info.mtime is not None and seen["mtime"] == info.mtime:
            return seen["sha256"]
        return self._content_hash(info.uri)

    def pending(self, paths: list[str] | None = None) -> list[dict]:
        """Files whose content was never ingested. Checks size and mtime first and hashes only files that
        changed since the ledger last saw them (``hf:`` sources have no mtime and are always hashed)."""
        seen, known = self.ledger.all_seen(), self.ledger.known_hashes()
        out = []
        for uri in self.discover(paths):
            info = stat_file(uri)
            sha = self._fingerprint(info, self.ledger, seen.get(uri) or {})
            if sha not in known:
                out.append({"uri": uri, "size": info.size, "sha256": sha})
        return out
