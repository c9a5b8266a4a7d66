"""The deployment definitions that `pipeline deploy` registers, and prefect.yaml kept in step with them."""

import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.config import load_config
from pipeline.deployments.definitions import (
    BATCH_INFERENCE,
    INGESTION,
    RETRAINING,
    TRAINING,
    build_deployments,
    model_limit_name,
)

ROOT = Path(__file__).resolve().parents[2]


def test_deployments_follow_the_configuration(tmp_path):
    config = load_config(
        overrides=[
            f"workspace={tmp_path / 'ws'}",
            "retraining.schedule_cron=*/10 * * * *",
            "retraining.timezone=Europe/Berlin",
            "training.epochs=7",
        ],
        environ={},
    )
    built = build_deployments(config)
    assert set(built) == {RETRAINING, TRAINING, INGESTION, BATCH_INFERENCE}
    retraining, training = built[RETRAINING], built[TRAINING]
    assert retraining.flow_name == "retraining" and training.flow_name == "training"
    schedule = retraining.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("*/10 * * * *", "Europe/Berlin")
    assert training.schedules == [] and built[INGESTION].schedules == []
    trigger = retraining.triggers[0]
    assert trigger.expect == {"pipeline.data.arrived"}
    assert trigger.match.root["pipeline.workspace"] == str(tmp_path / "ws")
    for deployment in built.values():
        assert deployment.enforce_parameter_schema
        assert deployment.parameters["config"]["training"]["epochs"] == 7
        assert deployment.parameters["config"]["workspace"] == str(tmp_path / "ws")
        assert deployment.job_variables["env"]["PIPELINE_HOME"] == str(tmp_path / "ws")
    form = training._parameter_openapi_schema.model_dump()["definitions"]["TrainingConfig"]["properties"]["epochs"]
    assert form["minimum"] == 1 and form["maximum"] == 100 and form["description"]


def test_event_trigger_can_be_switched_off():
    config = load_config(overrides=["retraining.trigger_on_new_data=false"], environ={})
    assert build_deployments(config)[RETRAINING].triggers == []


def test_model_limit_name_is_a_valid_prefect_name():
    assert model_limit_name("team/intents") == "pipeline-model-team_intents"


def test_prefect_yaml_is_rendered_from_the_python_definitions():
    """One declaration: the YAML for `prefect deploy` is generated from definitions.py and must be current."""
    from pipeline.deployments.render import render_prefect_yaml

    assert (ROOT / "deployments" / "prefect.yaml").read_text() == render_prefect_yaml(), (
        "run: python -m pipeline.deployments.render > deployments/prefect.yaml"
    )
    declared = {d["name"]: d for d in yaml.safe_load(render_prefect_yaml())["deployments"]}
    config = load_config(environ={})
    assert set(declared) == set(build_deployments(config))
    assert declared[RETRAINING]["entrypoint"] == "flows/retraining.py:retraining_flow"
    for name, deployment in build_deployments(config).items():
        heartbeat = declared[name]["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]
        assert heartbeat == deployment.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]
        assert heartbeat == str(config.deployment.heartbeat_seconds)
    assert declared[RETRAINING]["triggers"][0]["expect"] == ["pipeline.data.arrived"]
    for name in (RETRAINING, TRAINING):
        assert declared[name]["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}


def test_deployment_modules_import_without_torch():
    code = (
        "import sys, pipeline.flows.retraining, pipeline.flows.ingestion, pipeline.flows.batch_inference, "
        "pipeline.deployments.definitions; print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={
            "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
            "PATH": "/usr/bin:/bin",
            "HOME": str(ROOT),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        },
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_run_form_puts_the_common_choices_first_with_titles_and_descriptions():
    training = build_deployments(load_config(environ={}))[TRAINING]
    schema = training._parameter_openapi_schema.model_dump()
    fields = sorted(schema["properties"].items(), key=lambda item: item[1]["position"])
    assert [name for name, _ in fields] == [
        "data_paths",
        "base_model",
        "method",
        "epochs",
        "learning_rate",
        "promote",
        "config",
    ]
    assert [prop["title"] for _, prop in fields] == [
        "Data files",
        "Base model",
        "Fine-tuning method",
        "Epochs",
        "Learning rate",
        "Promote to champion",
        "Advanced settings",
    ]
    assert all(prop.get("description") for _, prop in fields)
    assert schema["required"] == [] or not schema.get("required")
    epochs = schema["properties"]["epochs"]["anyOf"][0]
    assert (epochs["minimum"], epochs["maximum"]) == (1, 100)
    configured = build_deployments(load_config(overrides=["training.epochs=5"], environ={}))[TRAINING]
    form = configured._parameter_openapi_schema.properties
    assert form["epochs"]["default"] == 5 and form["method"]["default"] == "full", "the form shows values"
    assert configured.parameters == {"config": configured.parameters["config"]}, "config alone decides API runs"
    assert configured.parameters["config"]["training"]["epochs"] == 5


def test_batch_inference_runs_on_its_schedule_and_on_inbox_events(tmp_path):
    config = load_config(overrides=[f"workspace={tmp_path / 'ws'}", "scoring.schedule_cron=5 * * * *"], environ={})
    deployment = build_deployments(config)[BATCH_INFERENCE]
    assert deployment.flow_name == "batch-inference"
    assert deployment.schedules[0].schedule.cron == "5 * * * *"
    trigger = deployment.triggers[0]
    assert trigger.expect == {"pipeline.inbox.arrived"}
    assert trigger.match.root["pipeline.workspace"] == str(tmp_path / "ws")
    quiet = load_config(overrides=["scoring.schedule_cron=null", "scoring.trigger_on_inbox_event=false"], environ={})
    assert build_deployments(quiet)[BATCH_INFERENCE].schedules == []
    assert build_deployments(quiet)[BATCH_INFERENCE].triggers == []
