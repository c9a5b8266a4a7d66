"""Great Expectations Data Docs that render offline.

GX's page templates load Bootstrap, jQuery, bootstrap-table, Vega and Font Awesome from CDNs and show a
logo hosted on S3. ``make_offline`` rewrites every page of a built site so that it references only
files inside the site: the CDN libraries are vendored (pinned versions, under
``expectations/data_docs/vendor``, refreshed by ``vendor.sh``) and copied into ``static/vendor/``; the
logo comes from GX's own ``static/images``; Font Awesome's five icons are drawn by ``offline.css``;
links to outside web sites lose their ``href``. Nothing is fetched, ever.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ASSETS = "data_docs"
REMOTE = re.compile(r"^(?:https?:)?//", re.IGNORECASE)
TAG = re.compile(r"<(script|link|img)\b[^>]*>(?:\s*</script>)?", re.IGNORECASE)
ATTRIBUTE = re.compile(r"""\b(src|href)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
CSS_URL = re.compile(r"""url\(\s*(["']?)(.*?)\1\s*\)""", re.IGNORECASE)
STATIC_LINK = re.compile(r"""\b(src|href)\s*=\s*(["'])(?:\.\.?/)*static/(?!vendor/)(.*?)\2""", re.IGNORECASE)
ANCHOR_HREF = re.compile(r"""(<a\b[^>]*?)\s+href\s*=\s*(["'])(?:https?:)?//.*?\2""", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class DataDocs:
    """Where Data Docs go: ``site_dir/index.html`` and the pages, ``results_dir`` the stored GX results."""

    site_dir: Path
    results_dir: Path

    @classmethod
    def in_reports(cls, reports: Path) -> DataDocs:
        return cls(Path(reports) / "data_docs", Path(reports) / "gx_results")

    @property
    def index(self) -> Path:
        return self.site_dir / "index.html"


def context_config(docs: DataDocs | None):
    """An in-memory GX project without progress bars; with ``docs`` its validation results and its Data
    Docs site live on disk."""
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    if docs is None:
        return config
    config.stores["validation_results_store"] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs.results_dir)},
    }
    config.data_docs_sites = {
        "local_site": {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs.site_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    return config


def vendor_dir() -> Path:
    return Path(str(resources.files("pipeline.expectations") / ASSETS))


def _vendored_name(url: str, kind: str, available: set[str]) -> str | None:
    """The vendored file standing in for a CDN URL (``vega@5`` -> ``vega.min.js``), or None to drop it."""
    last = url.split("?")[0].split("#")[0].rstrip("/").rsplit("/", 1)[-1]
    base = re.sub(r"@.*$", "", last)
    base = re.sub(r"-\d+(?:\.\d+)+", "", base).replace(".min", "")
    stem, dot, ext = base.rpartition(".")
    if not dot or ext not in ("js", "css"):
        stem, ext = base, "js" if kind == "script" else "css"
    name = f"{stem}.min.{ext}"
    return name if name in available else None


def _rewrite_tag(tag: str, kind: str, prefix: str, available: set[str]) -> str:
    match = ATTRIBUTE.search(tag)
    if match is None or not REMOTE.match(match.group(3).strip()):
        return tag
    url = match.group(3).strip()
    if kind == "img":
        return ATTRIBUTE.sub(
            lambda m: f'src="{prefix}/images/logo-long.png"' if m.group(1).lower() == "src" else m.group(0), tag
        )
    name = _vendored_name(url, kind, available)
    if name is None:
        return ""
    if kind == "script":
        return f'<script src="{prefix}/vendor/{name}"></script>'
    return f'<link rel="stylesheet" href="{prefix}/vendor/{name}">'


def rewrite_page(html: str, static_prefix: str, available: set[str]) -> str:
    """One page with every remote resource swapped for a vendored file under ``static_prefix`` (or dropped)."""

    def tag(match: re.Match) -> str:
        return _rewrite_tag(match.group(0), match.group(1).lower(), static_prefix, available)

    html = TAG.sub(tag, html)
    html = STATIC_LINK.sub(lambda m: f"{m.group(1)}={m.group(2)}{static_prefix}/{m.group(3)}{m.group(2)}", html)
    html = rewrite_css(html, static_prefix)
    html = ANCHOR_HREF.sub(r"\1", html)
    stylesheet = f'<link rel="stylesheet" href="{static_prefix}/vendor/offline.css">'
    if stylesheet not in html:
        html = html.replace("</head>", f"{stylesheet}\n</head>", 1)
    return html


def rewrite_css(css: str, static_prefix: str) -> str:
    """Remote ``url()`` images (GX's dark-mode logo) become the logo GX ships in ``static/images``."""
    return CSS_URL.sub(
        lambda m: f"url('{static_prefix}/images/logo-long.png')" if REMOTE.match(m.group(2).strip()) else m.group(0),
        css,
    )


def make_offline(site_dir: Path, since: float | None = None) -> list[Path]:
    """Copy the vendored assets into ``site_dir/static/vendor`` and rewrite the site's pages and styles
    (only those written at or after ``since``, a ``time.time()``, when given); returns the pages rewritten."""
    site_dir = Path(site_dir)
    source = vendor_dir()
    target = site_dir / "static" / "vendor"
    target.mkdir(parents=True, exist_ok=True)
    for path in [*(source / "vendor").glob("*.*"), source / "offline.css"]:
        destination = target / path.name
        if not destination.exists() or destination.stat().st_size != path.stat().st_size:
            shutil.copyfile(path, destination)
    available = {p.name for p in target.iterdir()}

    def fresh(path: Path) -> bool:
        return since is None or path.stat().st_mtime >= since - 1.0

    pages = sorted(p for p in site_dir.rglob("*.html") if fresh(p))
    styles = [p for p in site_dir.rglob("*.css") if target not in p.parents and fresh(p)]
    for path in [*pages, *styles]:
        prefix = Path(os.path.relpath(site_dir / "static", path.parent)).as_posix()
        text = path.read_text(encoding="utf-8")
        rewritten = rewrite_page(text, prefix, available) if path.suffix == ".html" else rewrite_css(text, prefix)
        if rewritten != text:
            path.write_text(rewritten, encoding="utf-8")
    return pages


def remote_references(text: str) -> list[str]:
    """Every http(s) or protocol-relative URL used as a ``src``/``href`` or CSS ``url()`` in ``text``."""
    found = [m.group(3) for m in ATTRIBUTE.finditer(text) if REMOTE.match(m.group(3).strip())]
    found += [m.group(2) for m in CSS_URL.finditer(text) if REMOTE.match(m.group(2).strip())]
    return found


def local_references(page: Path) -> list[Path]:
    """Files a page loads or links to inside the site (anchors, ``data:`` and ``javascript:`` left out)."""
    text = page.read_text(encoding="utf-8")
    values = [m.group(3) for m in ATTRIBUTE.finditer(text)] + [m.group(2) for m in CSS_URL.finditer(text)]
    out = []
    for value in values:
        value = value.strip().split("#")[0].split("?")[0]
        if value and not REMOTE.match(value) and not re.match(r"^(data|javascript|mailto):", value):
            out.append((page.parent / value).resolve())
    return out
