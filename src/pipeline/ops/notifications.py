"""Failure messages for people: a JSON document posted to a webhook (Slack/Teams-style ``text`` included)."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import datetime, timezone

logger = logging.getLogger(__name__)

FAILED_EVENT = "pipeline.run.failed"


class NotificationError(RuntimeError):
    """The webhook could not be reached or answered with an error status."""


def failure_message(flow_name: str, run_name: str, run_id: str, state: str, reason: str,
                    model_name: str | None = None, run_url: str | None = None) -> dict:
    """The JSON document sent when a run fails. ``text`` is a one-line summary for chat webhooks."""
    where = f" <{run_url}>" if run_url else ""
    return {
        "event": FAILED_EVENT,
        "text": f"Pipeline run {flow_name}/{run_name} {state.lower()}: {reason.splitlines()[0] if reason else ''}{where}",
        "flow": flow_name,
        "flow_run_name": run_name,
        "flow_run_id": run_id,
        "state": state,
        "reason": reason,
        "model_name": model_name,
        "url": run_url,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def post_json(url: str, payload: dict, timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON; returns the HTTP status. Raises NotificationError on any failure."""
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "textclf-pipeline"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        raise NotificationError(f"webhook {url} answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise NotificationError(f"webhook {url} unreachable: {exc}") from exc
