"""Base job templates for the work pools a team runs the deployments on: process, Docker and Kubernetes.

Each template is the installed Prefect worker's own default template with the defaults of
``deployments/pools/<kind>.yaml`` applied; the Kubernetes one also gains GPU requests, a memory-backed
``/dev/shm``, a node selector, tolerations, environment from a Secret and the workspace volume. Create a pool
from one with::

    python -m pipeline.deployments.work_pools kubernetes --output k8s-template.json
    prefect work-pool create pipeline-k8s --type kubernetes --base-job-template k8s-template.json

The Docker and Kubernetes workers come with the ``team`` extra (``prefect-docker``, ``prefect-kubernetes``).
"""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Any

import yaml

POOLS = Path(__file__).parent / "pools"
WORKERS = {
    "process": ("prefect.workers.process", "ProcessWorker"),
    "docker": ("prefect_docker.worker", "DockerWorker"),
    "kubernetes": ("prefect_kubernetes.worker", "KubernetesWorker"),
}
WORKSPACE_MOUNT = "/var/lib/pipeline"


class WorkPoolError(ValueError):
    """An unknown pool kind, a missing worker package, or a pool file that does not fit the worker's template."""


def worker_class(kind: str):
    """The Prefect worker class of ``kind`` (raises WorkPoolError naming the package to install)."""
    if kind not in WORKERS:
        raise WorkPoolError(f"unknown work pool kind {kind!r}; known: {', '.join(WORKERS)}")
    module, name = WORKERS[kind]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise WorkPoolError(
            f"the {kind} worker needs {module.split('.')[0].replace('_', '-')}: "
            f"pip install 'textclf-pipeline[team]' ({exc})"
        ) from exc


def load_pool_spec(kind: str) -> dict[str, Any]:
    """``deployments/pools/<kind>.yaml``: ``type``, ``defaults``, optional ``extra_variables`` and
    ``gpu_job_variables``."""
    path = POOLS / f"{kind}.yaml"
    if not path.exists():
        raise WorkPoolError(f"no pool file {path}")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    if spec.get("type") != kind:
        raise WorkPoolError(f"{path}: type is {spec.get('type')!r}, expected {kind!r}")
    return spec


def build_base_job_template(kind: str) -> dict[str, Any]:
    """The worker's default base job template with this pipeline's defaults (and, for Kubernetes, extras)."""
    worker = worker_class(kind)
    spec = load_pool_spec(kind)
    template = copy.deepcopy(worker.get_default_base_job_template())
    properties = template["variables"]["properties"]
    properties.update(copy.deepcopy(spec.get("extra_variables") or {}))
    unknown = sorted(set(spec.get("defaults") or {}) - set(properties))
    if unknown:
        raise WorkPoolError(
            f"pools/{kind}.yaml sets defaults for variables the {kind} worker does not have: {', '.join(unknown)}"
        )
    for name, value in (spec.get("defaults") or {}).items():
        properties[name]["default"] = copy.deepcopy(value)
    if kind == "kubernetes":
        add_kubernetes_extras(template)
    return template


def add_kubernetes_extras(template: dict[str, Any]) -> None:
    """GPU limit, memory-backed /dev/shm, node selector, tolerations, env from a Secret, workspace volume."""
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["resources"]["limits"]["nvidia.com/gpu"] = "{{ gpu_limit }}"
    container["envFrom"] = [{"secretRef": {"name": "{{ env_secret }}", "optional": True}}]
    container["volumeMounts"] = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "workspace", "mountPath": WORKSPACE_MOUNT},
    ]
    pod["volumes"] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "{{ shm_size_limit }}"}},
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "{{ workspace_claim }}"}},
    ]
    pod["nodeSelector"] = "{{ node_selector }}"
    pod["tolerations"] = "{{ tolerations }}"


def gpu_job_variables(kind: str) -> dict[str, Any]:
    """Job variables a deployment sets to train on GPUs in a pool of ``kind`` (empty for a process pool)."""
    return copy.deepcopy(load_pool_spec(kind).get("gpu_job_variables") or {})


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - thin CLI
    import argparse

    parser = argparse.ArgumentParser(description="Print a work pool's base job template (JSON).")
    parser.add_argument("kind", choices=sorted(WORKERS))
    parser.add_argument("--output", help="Write to this file instead of standard output.")
    args = parser.parse_args(argv)
    text = json.dumps(build_base_job_template(args.kind), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        print(text, end="")


if __name__ == "__main__":  # pragma: no cover
    main()
