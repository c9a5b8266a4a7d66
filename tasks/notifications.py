"""Failure notification for deployed flows: a markdown artifact on the run and an optional webhook message.

Deployments made by ``pipeline deploy`` are notified by server-side automations instead (they still fire when
the worker is killed); this in-process hook then only publishes the artifact.

``report_failure`` is a Prefect state hook (``on_failure`` / ``on_crashed``); it never raises, so a broken
webhook cannot hide the original failure.
"""

from __future__ import annotations

import logging

from prefect.artifacts import MarkdownArtifact
from prefect.settings import PREFECT_UI_URL
from pydantic import ValidationError

from pipeline.config import PipelineConfig
from pipeline.ops import notifications as notify
from pipeline.ops.reports import failure_markdown
from pipeline.secrets import config_secrets, redact_text, redact_url, resolve_secret

logger = logging.getLogger(__name__)


def config_of(parameters: dict) -> PipelineConfig:
    """The run's configuration parameter (defaults when it is missing or invalid)."""
    value = parameters.get("config")
    if isinstance(value, PipelineConfig):
        return value
    try:
        return PipelineConfig.model_validate(value or {})
    except ValidationError:
        return PipelineConfig()


def failure_reason(state) -> str:
    """``ExceptionType: message`` of the failed state when the exception is at hand, else its message."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # the result may live in storage this process cannot read
        exc = None
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return state.message or state.name


def run_url(flow_run_id) -> str | None:
    base = PREFECT_UI_URL.value()
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}" if base else None


def server_notifies(flow_run) -> bool:
    """True when the run's deployment has an enabled failure-notice automation on the server (``pipeline deploy``
    made it): the server sends the notice, even when this process dies, so this hook does not send it twice."""
    if getattr(flow_run, "deployment_id", None) is None:
        return False
    from prefect import get_client

    from pipeline.deployments.automations import NOTIFY_SUFFIX

    target = f"prefect.deployment.{flow_run.deployment_id}"
    try:
        with get_client(sync_client=True) as client:
            automations = client.read_automations()
    except Exception:  # the server is unreachable: notify from here
        return False
    return any(
        a.enabled and a.name.endswith(NOTIFY_SUFFIX) and target in a.trigger.model_dump_json() for a in automations
    )


def report_failure(flow, flow_run, state) -> None:
    """State hook: publish the reason as artifact ``run-failure`` and post it to ``notifications.webhook_url``."""
    config = config_of(flow_run.parameters or {})
    reason = redact_text(failure_reason(state), config_secrets(config))
    url = run_url(flow_run.id)
    webhook = resolve_secret(config.notifications.webhook_url)
    try:
        MarkdownArtifact(
            key="run-failure",
            description="Why the run failed",
            flow_run_id=flow_run.id,
            markdown=failure_markdown(flow.name, flow_run.name, state.name, reason, url, redact_url(webhook)),
        ).create()
    except Exception:
        logger.exception("could not publish the failure artifact of %s", flow_run.name)
    if not webhook:
        return
    if server_notifies(flow_run):
        logger.info("failure notice of %s left to the server's automation", flow_run.name)
        return
    message = notify.failure_message(
        flow.name, flow_run.name, str(flow_run.id), state.name, reason, config.registry.model_name, url
    )
    try:
        notify.post_json(webhook, message, config.notifications.webhook_timeout_seconds)
    except Exception as exc:  # NotificationError, or anything unforeseen: never hide the original failure
        logger.warning("failure notification not delivered: %s", redact_text(str(exc), [webhook]))
