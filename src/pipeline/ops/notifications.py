"""Failure messages for people: a JSON document posted to a webhook (Slack/Teams-style ``text`` included)."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime

from pipeline.secrets import redact_text, redact_url

logger = logging.getLogger(__name__)

FAILED_EVENT = "pipeline.run.failed"


class NotificationError(RuntimeError):
    """The webhook could not be reached or answered with an error status."""


def failure_message(
    flow_name: str,
    run_name: str,
    run_id: str,
    state: str,
    reason: str,
    model_name: str | None = None,
    run_url: str | None = None,
) -> dict:
    """The JSON document sent when a run fails. ``text`` is a one-line summary for chat webhooks."""
    where = f" <{run_url}>" if run_url else ""
    return {
        "event": FAILED_EVENT,
        "text": f"Pipeline run {flow_name}/{run_name} {state.lower()}: "
        f"{reason.splitlines()[0] if reason else ''}{where}",
        "flow": flow_name,
        "flow_run_name": run_name,
        "flow_run_id": run_id,
        "state": state,
        "reason": reason,
        "model_name": model_name,
        "url": run_url,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is refused: following it would send the message (and its secrets) elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def post_json(url: str, payload: dict, timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Raises NotificationError on any failure.

    ``timeout`` bounds the whole call (connect, send, every read), not each read; redirects are refused;
    error messages name the endpoint by scheme and host only (a webhook URL's path is its secret).
    """
    shown = redact_url(url)
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "User-Agent": "textclf-pipeline"}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    outcome: dict = {}

    def deliver() -> None:
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read(1 << 16)
                outcome["status"] = response.status
        except urllib.error.HTTPError as exc:
            outcome["error"] = f"webhook {shown} answered {exc.code} {exc.reason}"
        except BaseException as exc:  # refused, DNS, TLS, timeouts, malformed status lines: all reported alike
            reason = getattr(exc, "reason", None) or exc
            outcome["error"] = f"webhook {shown} unreachable: {type(exc).__name__}: {redact_text(str(reason), [url])}"

    worker = threading.Thread(target=deliver, name="webhook", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():  # a server trickling bytes resets the socket timeout on every read; this does not
        raise NotificationError(f"webhook {shown} did not answer within {timeout:g} s")
    if "error" in outcome:
        raise NotificationError(outcome["error"])
    return outcome["status"]
