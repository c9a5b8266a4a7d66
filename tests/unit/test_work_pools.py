"""The work pools' base job templates: built from the installed Prefect workers' own templates, their defaults and
the GPU job variables validate against the workers' variable schemas, and they render to the job a worker starts."""

from __future__ import annotations

import asyncio
import re
import uuid

import jsonschema
import pytest

from pipeline.deployments import work_pools
from pipeline.deployments.work_pools import WorkPoolError, build_base_job_template, gpu_job_variables, worker_class

KINDS = ["process", "docker", "kubernetes"]


@pytest.fixture(autouse=True)
def no_server():
    """Rendering must not need a Prefect server: point the client at a port nobody listens on (no temporary
    server starts either)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        yield


def render(kind: str, values: dict) -> dict:
    """The job configuration a worker of ``kind`` would run for a flow run with these job variables."""
    from prefect.client.schemas.objects import FlowRun

    if kind != "process":
        pytest.importorskip(f"prefect_{kind}", reason="the team extra is not installed")
    template = build_base_job_template(kind)
    configuration = asyncio.run(worker_class(kind).job_configuration.from_template_and_values(template, values))
    configuration.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="brave-otter", flow_id=uuid.uuid4()))
    return configuration.model_dump(mode="json")


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_and_gpu_variables_validate_against_the_workers_schema(kind):
    if kind != "process":
        pytest.importorskip(f"prefect_{kind}", reason="the team extra is not installed")
    template = build_base_job_template(kind)
    stock = worker_class(kind).get_default_base_job_template()
    schema = template["variables"]
    defaults = {name: p["default"] for name, p in schema["properties"].items() if "default" in p}
    jsonschema.validate(defaults, schema)  # what the server checks when the pool is created
    jsonschema.validate(gpu_job_variables(kind), schema)  # and when a deployment sets job variables
    # Every variable the worker ships is still there with its type; only new ones were added.
    for name, prop in stock["variables"]["properties"].items():
        assert schema["properties"][name].get("type") == prop.get("type"), name
    used = set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", str(template["job_configuration"])))
    assert used <= set(schema["properties"]), used - set(schema["properties"])
    assert schema["properties"]["env"]["default"]["PIPELINE_HOME"] == work_pools.WORKSPACE_MOUNT


def test_a_bad_default_is_refused_naming_the_variable(tmp_path, monkeypatch):
    (tmp_path / "process.yaml").write_text("type: process\ndefaults:\n  gpu_count: 2\n")
    monkeypatch.setattr(work_pools, "POOLS", tmp_path)
    with pytest.raises(WorkPoolError, match="gpu_count"):
        build_base_job_template("process")
    with pytest.raises(WorkPoolError, match="unknown work pool kind"):
        build_base_job_template("ecs")


def test_process_job_runs_with_the_workspace_in_its_environment():
    job = render("process", {})
    assert job["env"]["PIPELINE_HOME"] == "/var/lib/pipeline" and job["stream_output"] is True


def test_docker_job_shares_memory_and_requests_gpus_only_when_asked():
    cpu = render("docker", {})
    assert cpu["image"].endswith("-cpu") and cpu["networks"] == ["pipeline"]
    assert cpu["container_create_kwargs"] == {"shm_size": "2g"}
    assert cpu["volumes"] == ["pipeline-workspace:/var/lib/pipeline"]
    assert cpu["env"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    gpu = render("docker", gpu_job_variables("docker"))
    assert gpu["image"].endswith("-cuda")
    assert gpu["container_create_kwargs"]["device_requests"] == [{"count": -1, "capabilities": [["gpu"]]}]
    # docker-py turns these keyword arguments into a host config; a wrong key would fail only at run time.
    from docker.types import DeviceRequest, HostConfig

    host = HostConfig(
        version="1.44",
        shm_size=gpu["container_create_kwargs"]["shm_size"],
        device_requests=gpu["container_create_kwargs"]["device_requests"],
    )
    assert host["ShmSize"] == 8 * 1024**3 and isinstance(host["DeviceRequests"][0], DeviceRequest)
    assert host["DeviceRequests"][0]["Capabilities"] == [["gpu"]]


def test_kubernetes_job_requests_gpus_shared_memory_and_secrets():
    cpu = render("kubernetes", {})
    pod = cpu["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 0
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert container["envFrom"] == [{"secretRef": {"name": "pipeline-credentials", "optional": True}}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "2Gi"}
    assert volumes["workspace"]["persistentVolumeClaim"] == {"claimName": "pipeline-workspace"}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/dev/shm", "/var/lib/pipeline"}
    assert pod["nodeSelector"] == {} and pod["tolerations"] == []
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert {"name": "PIPELINE_HOME", "value": "/var/lib/pipeline"} in container["env"]
    assert cpu["namespace"] == "pipeline" and pod["serviceAccountName"] == "pipeline"

    gpu = render("kubernetes", gpu_job_variables("kubernetes"))
    pod = gpu["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].endswith("-cuda") and container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {v["name"]: v for v in pod["volumes"]}["dshm"]["emptyDir"]["sizeLimit"] == "8Gi"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_kubernetes_manifest_is_a_valid_job_object():
    """The rendered manifest deserialises into the Kubernetes client's typed Job model."""
    pytest.importorskip("kubernetes_asyncio")
    from kubernetes_asyncio.client import ApiClient

    manifest = render("kubernetes", gpu_job_variables("kubernetes"))["job_manifest"]

    async def deserialize():
        async with ApiClient() as api:
            return api._ApiClient__deserialize(manifest, "V1Job")

    job = asyncio.run(deserialize())
    container = job.spec.template.spec.containers[0]
    assert container.resources.limits["nvidia.com/gpu"] == "1"  # a quantity
    assert job.spec.template.spec.volumes[0].empty_dir.medium == "Memory"
    assert job.spec.template.spec.restart_policy == "Never"
