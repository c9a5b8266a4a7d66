"""Keeping secrets out of params, tags, artifacts and logs.

Webhook URLs carry their secret in the path (``https://hooks.example.com/services/T0/B0/TOKEN``) and
tracking URIs may carry credentials (``https://user:pass@host``, ``postgresql://user:pass@db/mlflow``) or a
token in the query. ``redact_url`` keeps what an operator needs to recognise the endpoint (scheme, host,
port) and hides the rest; ``redact_config`` applies it to every secret-bearing configuration value.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

REDACTED = "***"
# Configuration keys whose whole value is a secret-bearing URL (dotted paths of PipelineConfig).
SECRET_URL_KEYS = ("notifications.webhook_url",)
# Configuration keys that are URLs whose credentials (user:password, query) are secret.
CREDENTIAL_URL_KEYS = ("tracking.tracking_uri", "data.ledger_url", "data.storage")
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


WEBHOOK_ENV = "PIPELINE_WEBHOOK_URL"


def resolve_secret(value: str | None) -> str | None:
    """``env:NAME`` -> the value of environment variable NAME (None when unset); anything else unchanged."""
    import os

    if value and value.startswith("env:"):
        return os.environ.get(value[len("env:") :]) or None
    return value


def redact_url(url: str | None, keep_path: bool = False) -> str | None:
    """``scheme://host[:port]/***`` (or the path kept, without credentials or query, when ``keep_path``)."""
    if not url:
        return url
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    if not parts.scheme:
        return REDACTED
    user = f"{REDACTED}@" if parts.username or parts.password else ""
    if keep_path:
        path = parts.path + (f"?{REDACTED}" if parts.query else "")
    else:
        path = f"/{REDACTED}" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{user}{host}{port}{path}"


def redact_credentials(url: str | None) -> str | None:
    """The URL with any user, password and query hidden; the path is kept (it names a database or server)."""
    if not url or "://" not in str(url):
        return url
    parts = urlsplit(str(url))
    if not (parts.username or parts.password or parts.query):
        return url
    return redact_url(url, keep_path=True)


def redact_text(text: str, secrets: list[str | None]) -> str:
    """``text`` with each secret (and each URL that contains credentials) replaced by its redacted form."""
    out = str(text)
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        out = out.replace(secret, redact_url(secret) or REDACTED)
    return _URL.sub(lambda m: redact_credentials(m.group(0)) or "", out)


def _get(data: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _put(data: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


def redact_config(config: dict) -> dict:
    """A copy of a ``PipelineConfig.model_dump()`` with secret URLs redacted (safe to log or publish)."""
    import copy

    out = copy.deepcopy(config)
    for key in SECRET_URL_KEYS:
        if _get(out, key) and not str(_get(out, key)).startswith("env:"):
            _put(out, key, redact_url(_get(out, key)))
    for key in CREDENTIAL_URL_KEYS:
        if _get(out, key):
            _put(out, key, redact_credentials(_get(out, key)))
    data_paths = _get(out, "data.paths")
    if data_paths:
        _put(out, "data.paths", [redact_credentials(p) for p in data_paths])
    return out


def config_secrets(config) -> list[str]:
    """The secret strings of a ``PipelineConfig`` (to scrub from free text such as error messages)."""
    found = [config.notifications.webhook_url, resolve_secret(config.notifications.webhook_url)]
    uri = config.tracking.tracking_uri
    if uri and redact_credentials(uri) != uri:
        found.append(uri)
    return [s for s in found if s]
