"""The deployment definitions that `pipeline serve` registers, and prefect.yaml kept in step with them."""

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


def file_entrypoint(module_entrypoint: str) -> str:
    """``pipeline.flows.retraining.retraining_flow`` -> ``flows/retraining.py:retraining_flow``."""
    module, _, attribute = module_entrypoint.removeprefix("pipeline.").rpartition(".")
    return f"{module.replace('.', '/')}.py:{attribute}"


def test_deployments_follow_the_configuration(tmp_path):
    config = load_config(overrides=[f"workspace={tmp_path / 'ws'}", "retraining.schedule_cron=*/10 * * * *",
                                    "retraining.timezone=Europe/Berlin", "training.epochs=7"], environ={})
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


def test_prefect_yaml_declares_the_same_deployments():
    declared = {d["name"]: d for d in yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())["deployments"]}
    config = load_config(environ={})
    built = build_deployments(config)
    assert set(declared) == set(built)
    for name, deployment in built.items():
        entry = declared[name]
        assert entry["entrypoint"] == file_entrypoint(deployment.entrypoint), name
        assert entry["work_pool"]["name"] == config.retraining.work_pool
        assert entry["enforce_parameter_schema"] is True
    schedule = declared[RETRAINING]["schedules"][0]
    assert (schedule["cron"], schedule["timezone"]) == (config.retraining.schedule_cron, config.retraining.timezone)
    assert declared[RETRAINING]["triggers"][0]["expect"] == ["pipeline.data.arrived"]
    for name in (RETRAINING, TRAINING):
        assert declared[name]["concurrency_limit"] == {"limit": 1, "collision_strategy": config.retraining.collision_strategy}


def test_deployment_modules_import_without_torch():
    code = ("import sys, pipeline.flows.retraining, pipeline.flows.ingestion, pipeline.flows.batch_inference, "
            "pipeline.deployments.definitions; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(ROOT),
                              "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


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
