"""Server-side automations of the deployments: failure notices, deadlines and crash detection.

They run in the Prefect server, not in the flow-run process, so they still act when a worker or pod is
killed. ``pipeline deploy`` creates or updates them by name (idempotent), one set per deployment:

- ``<deployment>: notify on failure``: a run entering ``Failed`` or ``Crashed`` calls the webhook block
  (``notifications.webhook_url``) and/or sends through ``notifications.notification_block``;
- ``<deployment>: deadline``: a run still running ``timeout`` seconds after it started is cancelled
  (its concurrency slot is released when the worker stops it) and a notice is sent;
- ``<deployment>: crash detection``: a run whose heartbeats stop (its process died with its worker) is
  marked ``Crashed``, which fires the failure notice.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import CallWebhook, CancelFlowRun, ChangeFlowRunState, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture

from pipeline.config import PipelineConfig

logger = logging.getLogger(__name__)

TERMINAL = {
    f"prefect.flow-run.{state}" for state in ("Completed", "Failed", "Cancelled", "Crashed", "Cancelling", "TimedOut")
}
NOTIFY_SUFFIX = ": notify on failure"
FAILED_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}


def webhook_block_name(model_name: str) -> str:
    """Name of the Webhook block holding ``notifications.webhook_url`` (block names are lowercase slugs)."""
    return "pipeline-" + (re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-") or "model") + "-alerts"


def webhook_payload(model_name: str, event: str) -> str:
    """Jinja template of the JSON body the server posts: Slack-style ``text`` plus machine-readable fields
    (the same keys as the in-process notice)."""
    text = (
        f"{{{{ flow.name }}}} run {{{{ flow_run.name }}}} of {model_name}: {event} "
        "({{ flow_run.state.name }}) {{ flow_run|ui_url or '' }}"
    )
    fields = {
        "event": event,
        "flow": "{{ flow.name }}",
        "flow_run": "{{ flow_run.name }}",
        "flow_run_id": "{{ flow_run.id }}",
        "state": "{{ flow_run.state.name }}",
        "model": model_name,
        "url": "{{ flow_run|ui_url or '' }}",
        "source": "prefect-automation",
    }
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in fields.items())
    # The state message is free text: tojson quotes and escapes it. ``ui_url`` is empty when the server does
    # not know its UI address (PREFECT_UI_URL).
    return "{" + f'"text": {json.dumps(text)}, {body}, "reason": {{{{ flow_run.state.message | tojson }}}}' + "}"


def notice_actions(webhook_id: UUID | None, notification_id: UUID | None, model_name: str, event: str) -> list:
    actions: list = []
    if webhook_id:
        actions.append(CallWebhook(block_document_id=webhook_id, payload=webhook_payload(model_name, event)))
    if notification_id:
        actions.append(
            SendNotification(
                block_document_id=notification_id,
                subject=f"[pipeline] {model_name}: {event}",
                body=(
                    f"{{{{ flow.name }}}} run {{{{ flow_run.name }}}} of {model_name}: {event} "
                    "({{ flow_run.state.name }}: {{ flow_run.state.message }})\n{{ flow_run|ui_url or '' }}"
                ),
            )
        )
    return actions


def deployment_automations(
    deployment_name: str,
    deployment_id: UUID,
    timeout_seconds: int,
    heartbeat_seconds: int,
    model_name: str,
    webhook_id: UUID | None,
    notification_id: UUID | None,
) -> list[Automation]:
    """The three automations of one deployment (without notice actions when no channel is configured)."""
    runs = {"prefect.resource.id": "prefect.flow-run.*"}
    related = {"prefect.resource.id": f"prefect.deployment.{deployment_id}", "prefect.resource.role": "deployment"}
    built = []
    notices = notice_actions(webhook_id, notification_id, model_name, "failed")
    if notices:
        built.append(
            Automation(
                name=f"{deployment_name}{NOTIFY_SUFFIX}",
                description="Failed or crashed runs send a notice.",
                trigger=EventTrigger(
                    match=runs,
                    match_related=related,
                    expect=FAILED_EVENTS,
                    posture=Posture.Reactive,
                    threshold=1,
                    within=timedelta(0),
                ),
                actions=notices,
            )
        )
    built.append(
        Automation(
            name=f"{deployment_name}: deadline",
            description=f"Cancel a run still running {timeout_seconds} s after it started, and say so.",
            trigger=EventTrigger(
                match=runs,
                match_related=related,
                after={"prefect.flow-run.Running"},
                expect=TERMINAL,
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=timeout_seconds),
            ),
            actions=[
                CancelFlowRun(),
                *notice_actions(
                    webhook_id, notification_id, model_name, f"cancelled after its {timeout_seconds} s deadline"
                ),
            ],
        )
    )
    built.append(
        Automation(
            name=f"{deployment_name}: crash detection",
            description="Mark a run Crashed when its heartbeats stop (its worker or pod was killed).",
            trigger=EventTrigger(
                match=runs,
                match_related=related,
                after={"prefect.flow-run.heartbeat"},
                expect={"prefect.flow-run.heartbeat", *TERMINAL},
                for_each={"prefect.resource.id"},
                posture=Posture.Proactive,
                threshold=1,
                within=timedelta(seconds=crash_after_seconds(heartbeat_seconds)),
            ),
            actions=[
                ChangeFlowRunState(
                    state=StateType.CRASHED,
                    message="no heartbeat: the process running this flow stopped (worker or pod killed)",
                )
            ],
        )
    )
    return built


def crash_after_seconds(heartbeat_seconds: int) -> int:
    return 2 * heartbeat_seconds + 10


def ensure_webhook_block(url: str | None, model_name: str) -> UUID | None:
    """Create or update the Webhook block that the automations call; None when no URL is configured."""
    if not url:
        return None
    from prefect.blocks.webhook import Webhook

    block = Webhook(method="POST", url=url, headers={"Content-Type": "application/json"})
    return block.save(webhook_block_name(model_name), overwrite=True)


def notification_block_id(client, reference: str | None) -> UUID | None:
    """Id of the notification block ``type-slug/name`` (created by an operator in the UI); raises if missing."""
    if not reference:
        return None
    block_type, _, name = reference.partition("/")
    return client.read_block_document_by_name(name=name, block_type_slug=block_type).id


def upsert_automation(automation: Automation) -> UUID:
    """Create the automation, or replace the one of the same name (every name is unique to this pipeline)."""
    try:
        existing = Automation.read(name=automation.name)
    except ValueError:
        existing = None
    if existing is None:
        return automation.create().id
    automation.id = existing.id
    automation.update()
    return existing.id


def delete_automation(name: str) -> None:
    try:
        Automation.read(name=name).delete()
    except ValueError:
        pass


def deadline_of(config: PipelineConfig, deployment_name: str) -> int:
    deployment = config.deployment
    return {
        "ingestion": deployment.ingestion_timeout_seconds,
        "batch-inference": deployment.scoring_timeout_seconds,
    }.get(deployment_name, deployment.training_timeout_seconds)


def ensure_automations(client, config: PipelineConfig, deployments: dict[str, UUID]) -> dict[str, UUID]:
    """Automations of every deployment (``{deployment: id}`` from ``deploy_all``); ``{name: automation id}``."""
    model = config.registry.model_name
    webhook_id = ensure_webhook_block(config.notifications.webhook_url, model)
    notification_id = notification_block_id(client, config.notifications.notification_block)
    if not (webhook_id or notification_id):
        logger.warning(
            "no failure notice channel configured (notifications.webhook_url or notifications.notification_block):"
            " failed runs only show in the Prefect UI"
        )
    ids = {}
    for name, deployment_id in deployments.items():
        full_name = f"{model} {name}"
        wanted = deployment_automations(
            full_name,
            deployment_id,
            deadline_of(config, name),
            config.deployment.heartbeat_seconds,
            model,
            webhook_id,
            notification_id,
        )
        for automation in wanted:
            ids[automation.name] = upsert_automation(automation)
        if not any(a.name.endswith(NOTIFY_SUFFIX) for a in wanted):  # the channel was removed from the configuration
            delete_automation(f"{full_name}{NOTIFY_SUFFIX}")
    return ids
