"""Deadlines for every MLflow call, and a quick check that the tracking server answers at all.

MLflow's client retries a failed request 7 times with a backoff factor of 2 and waits up to 120 s per
request: about 4 minutes per call against a server that is gone, and a run waits for each call in turn.
``apply_http_deadlines`` sets the client's timeout and retry budget explicitly (process environment, read
by MLflow at each request) so a run fails within about a minute; ``check_tracking_server`` answers in a
few seconds whether an ``http(s)`` tracking server is there before any work starts.
"""

from __future__ import annotations

import errno
import logging
import os
import urllib.error
import urllib.request

from pipeline.secrets import redact_credentials

logger = logging.getLogger(__name__)

# Defaults: each request gets 15 s, 3 retries with 1, 2, 4 s of backoff (plus up to 1 s jitter each).
DEFAULT_TIMEOUT_S, DEFAULT_MAX_RETRIES, DEFAULT_BACKOFF_FACTOR, JITTER_S = 15, 3, 1, 1.0


class TrackingUnavailableError(RuntimeError):
    """The MLflow tracking server cannot be reached (down, wrong address, or not answering in time)."""


def retry_budget_s(
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
) -> float:
    """Worst-case seconds one MLflow client call may take before it gives up (every attempt timing out)."""
    backoff = sum(backoff_factor * 2**attempt + JITTER_S for attempt in range(max_retries))
    return (max_retries + 1) * timeout_s + backoff


def current_retry_budget_s() -> float:
    """``retry_budget_s`` of the settings in force in this process."""
    return retry_budget_s(
        float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT", DEFAULT_TIMEOUT_S)),
        int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES", DEFAULT_MAX_RETRIES)),
        float(os.environ.get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", DEFAULT_BACKOFF_FACTOR)),
    )


def apply_http_deadlines(tracking_config=None, environ: dict | None = None) -> dict[str, str]:
    """Set MLflow's HTTP timeout and retry budget; returns what was set.

    With a ``TrackingConfig`` its ``http_*`` values are set; without one, the defaults are set only where
    the environment names nothing (so a user's ``MLFLOW_HTTP_REQUEST_*`` wins over built-in defaults).
    """
    environ = os.environ if environ is None else environ
    values = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": DEFAULT_TIMEOUT_S,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": DEFAULT_MAX_RETRIES,
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": DEFAULT_BACKOFF_FACTOR,
    }
    if tracking_config is not None:
        values = {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": int(tracking_config.http_timeout_s),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": tracking_config.http_max_retries,
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": tracking_config.http_backoff_factor,
        }
    applied = {}
    for key, value in values.items():
        if tracking_config is not None or key not in environ:
            environ[key] = applied[key] = str(value)
    return applied


def check_tracking_server(tracking_uri: str, timeout_s: float = 5.0) -> None:
    """Raise TrackingUnavailableError unless an ``http(s)`` tracking server answers ``/health`` in time.

    Other URIs (SQLite files, databases) are not checked here: their errors name the store themselves.
    """
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    shown = redact_credentials(tracking_uri)
    opener = urllib.request.build_opener()  # the environment's proxies, as MLflow's own client uses them
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout_s) as response:
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise TrackingUnavailableError(f"MLflow tracking server {shown} answered {exc.code}") from None
    except Exception as exc:  # refused, DNS, timeout, TLS, malformed answer: all mean "not usable now"
        reason = getattr(exc, "reason", exc)
        raise TrackingUnavailableError(
            f"MLflow tracking server {shown} is unreachable ({reason}); start it or "
            "point MLFLOW_TRACKING_URI / tracking.tracking_uri at a running one"
        ) from None


TRANSIENT_MLFLOW_CODES = ("TEMPORARILY_UNAVAILABLE", "INTERNAL_ERROR", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED")
TRANSIENT_ERRNOS = {
    errno.ENOSPC,
    errno.EIO,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ETIMEDOUT,
    errno.EDQUOT,
}


class ChampionUnavailableError(RuntimeError):
    """The champion could not be re-scored for an infrastructure reason: the run stops before registering, so
    its data stays untrained and the next run compares again (a version registered without the comparison
    would count its snapshot as trained)."""


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is about reaching storage or servers, not about the
    model itself: network errors, timeouts, a full disk, an MLflow server answering 5xx or 429."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (ConnectionError, TimeoutError, TrackingUnavailableError)):
            return True
        if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
            return True
        name = type(exc).__module__ + "." + type(exc).__name__
        if name.startswith(("requests.", "urllib3.")) and "Error" in type(exc).__name__:
            return True
        code = str(getattr(exc, "error_code", ""))
        if any(c in code for c in TRANSIENT_MLFLOW_CODES) or "Max retries exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
