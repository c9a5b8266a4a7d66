"""The server-side automations `pipeline deploy` creates: what triggers them and what they send."""

import json
from datetime import timedelta
from types import SimpleNamespace
from uuid import uuid4

from prefect.events.actions import CallWebhook, CancelFlowRun, ChangeFlowRunState, SendNotification
from prefect.server.events.jinja_filters import all_filters
from prefect.server.utilities.user_templates import register_user_template_filters, render_user_template_sync

from pipeline.config import load_config
from pipeline.deployments.automations import (
    crash_after_seconds,
    deadline_of,
    deployment_automations,
    webhook_block_name,
    webhook_payload,
)


def by_kind(automations) -> dict:
    return {a.name.rpartition(": ")[2]: a for a in automations}


def test_each_deployment_gets_notice_deadline_and_crash_detection():
    deployment_id, webhook_id = uuid4(), uuid4()
    built = by_kind(deployment_automations("m training", deployment_id, 600, 30, "m", webhook_id, None))
    assert set(built) == {"notify on failure", "deadline", "crash detection"}
    for automation in built.values():
        assert automation.trigger.match_related.root["prefect.resource.id"] == f"prefect.deployment.{deployment_id}"

    notify = built["notify on failure"]
    assert notify.trigger.expect >= {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert [type(a) for a in notify.actions] == [CallWebhook] and notify.actions[0].block_document_id == webhook_id

    deadline = built["deadline"].trigger
    assert deadline.posture == "Proactive" and deadline.after == {"prefect.flow-run.Running"}
    assert deadline.within == timedelta(seconds=600) and deadline.for_each == {"prefect.resource.id"}
    assert "prefect.flow-run.Completed" in deadline.expect
    assert [type(a) for a in built["deadline"].actions] == [CancelFlowRun, CallWebhook]

    crash = built["crash detection"]
    assert crash.trigger.after == {"prefect.flow-run.heartbeat"}
    assert "prefect.flow-run.heartbeat" in crash.trigger.expect
    assert crash.trigger.within == timedelta(seconds=crash_after_seconds(30)) == timedelta(seconds=70)
    assert isinstance(crash.actions[0], ChangeFlowRunState) and crash.actions[0].state.value == "CRASHED"


def test_without_a_channel_there_is_no_notice_but_deadline_and_crash_detection_stay():
    built = by_kind(deployment_automations("m training", uuid4(), 600, 30, "m", None, None))
    assert set(built) == {"deadline", "crash detection"}
    assert [type(a) for a in built["deadline"].actions] == [CancelFlowRun]


def test_a_notification_block_receives_the_notices_too():
    block = uuid4()
    built = by_kind(deployment_automations("m training", uuid4(), 600, 30, "m", uuid4(), block))
    sent = [a for a in built["notify on failure"].actions if isinstance(a, SendNotification)]
    assert sent and sent[0].block_document_id == block and "{{ flow_run.state.message }}" in sent[0].body


def test_webhook_payload_renders_to_json_even_with_quotes_in_the_reason():
    register_user_template_filters(all_filters)  # as the server's action service does
    flow_run = SimpleNamespace(
        id="1234", name="brave-cat", state=SimpleNamespace(name="Crashed", message='killed: "SIGKILL"\nworker gone')
    )
    rendered = render_user_template_sync(
        webhook_payload("intents", "failed"), {"flow": SimpleNamespace(name="training"), "flow_run": flow_run}
    )
    body = json.loads(rendered)
    assert body["reason"] == 'killed: "SIGKILL"\nworker gone'
    assert body["state"] == "Crashed" and body["flow_run_id"] == "1234" and body["model"] == "intents"
    assert body["text"].startswith("training run brave-cat of intents: failed (Crashed)")
    assert body["url"] == ""  # this server has no UI address: no "None" in the message


def test_deadlines_come_from_the_configuration():
    config = load_config(
        overrides=["deployment.training_timeout_seconds=120", "deployment.ingestion_timeout_seconds=60"], environ={}
    )
    assert deadline_of(config, "training") == deadline_of(config, "retraining") == 120
    assert deadline_of(config, "ingestion") == 60
    assert load_config(environ={}).deployment.training_timeout_seconds == 6 * 3600


def test_webhook_block_name_is_a_valid_block_slug():
    assert webhook_block_name("Team/Intents v2") == "pipeline-team-intents-v2-alerts"
