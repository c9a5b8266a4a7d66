"""The container side of a team deployment, checked without a Docker daemon: the Dockerfile, docker-compose.yml
(against the Compose Specification), the container deployments' build/push/pull steps, and that they all agree
with each other and with the work pool templates."""

from __future__ import annotations

import importlib
import inspect
import re
import shlex
from pathlib import Path

import pytest
import yaml

from pipeline.deployments.work_pools import load_pool_spec

ROOT = Path(__file__).resolve().parents[2]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def interpolate(text: str, environ: dict[str, str]) -> str:
    """Compose's variable substitution: ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` (required)."""

    def substitute(match: re.Match) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        value = environ.get(name, "")
        if operator == ":?" and not value:
            raise KeyError(f"{name}: {argument}")
        return value or (argument if operator == ":-" else "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}", substitute, text)


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_dockerfile_selects_cpu_or_cuda_torch_and_installs_from_the_lock():
    steps = dockerfile_instructions()
    args = {rest.split("=")[0]: rest.partition("=")[2] for keyword, rest in steps if keyword == "ARG"}
    assert args["VARIANT"] == "cpu" and args["BASE_IMAGE"].startswith("python:3.11")
    runs = [rest for keyword, rest in steps if keyword == "RUN"]
    torch_step = next(r for r in runs if "torch==" in r)
    assert "cpu)" in torch_step and "cuda)" in torch_step and "exit 2" in torch_step  # anything else is refused
    assert any("--require-hashes -r requirements/lock.txt" in r and "--no-deps" in r for r in runs)
    assert any("pip check" in r for r in runs), "the image must verify its dependency closure"
    # The lock is installed before the code is copied, so a code change does not reinstall dependencies.
    order = [rest for keyword, rest in steps if keyword in ("COPY", "RUN")]
    lock_copy = next(i for i, r in enumerate(order) if r.startswith("requirements/lock.txt"))
    assert lock_copy < next(i for i, r in enumerate(order) if r.startswith("src "))
    user = [rest for keyword, rest in steps if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")


def test_everything_the_dockerfile_copies_exists_and_passes_dockerignore():
    ignore = (ROOT / ".dockerignore").read_text().split()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "**" in ignore, ".dockerignore starts from nothing (no .venv, workspace or .env in the context)"
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            *sources, _destination = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"


def test_compose_file_follows_the_compose_specification():
    compose_spec = pytest.importorskip("compose_spec", reason="the test extra (compose-spec) is not installed")
    raw = (ROOT / "docker-compose.yml").read_text()
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw, {})  # no password, no stack
    text = interpolate(raw, {"POSTGRES_PASSWORD": "from-dotenv"})
    options = compose_spec.PyOptions(apply_merge=True)  # YAML merge keys (<<:), as docker compose reads them
    parsed = options.from_yaml(text)  # ValueError naming the key when the file breaks the specification
    parsed.validate()
    with pytest.raises(ValueError, match="healthchek"):  # the parser is strict: a misspelt key fails
        options.from_yaml(text.replace("healthcheck:", "healthchek:", 1))
    assert set(parsed.service_names()) == {"postgres", "prefect-server", "mlflow", "worker", "docker-worker"}


def test_compose_services_wait_for_healthy_dependencies_and_declare_their_volumes():
    spec = compose()
    services = spec["services"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("/", ".")):
                assert source in spec["volumes"], f"{name} mounts undeclared volume {source}"
            elif source.startswith("."):
                assert (ROOT / source).exists(), source


def test_compose_keeps_secrets_out_of_the_file():
    spec = compose()
    text = (ROOT / "docker-compose.yml").read_text()
    for service in spec["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY", key):
                assert str(value).startswith("${"), f"{key} must come from the environment or .env"
    assert re.findall(r"postgresql(?:\+asyncpg)?://pipeline:([^@]+)@", text) == ["${POSTGRES_PASSWORD}"] * 2
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    example = (ROOT / "deployments" / "compose" / "example.env").read_text()
    assert "POSTGRES_PASSWORD=" in example


def test_compose_servers_run_on_postgresql_and_the_docker_pool_joins_their_network():
    spec = compose()
    services = spec["services"]
    prefect_env = services["prefect-server"]["environment"]
    assert prefect_env["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    mlflow_args = services["mlflow"]["command"]
    assert any(a.startswith("--backend-store-uri=postgresql://") for a in mlflow_args)
    assert any(a.startswith("--artifacts-destination=") for a in mlflow_args)
    allowed_hosts = next(a for a in mlflow_args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert "mlflow:5000" in allowed_hosts, "workers on the network call http://mlflow:5000"
    sql = (ROOT / "deployments" / "compose" / "create-databases.sql").read_text()
    assert "CREATE DATABASE mlflow" in sql and services["postgres"]["environment"]["POSTGRES_DB"] == "prefect"
    worker_env = services["worker"]["environment"]
    assert worker_env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert worker_env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"

    docker_pool = load_pool_spec("docker")["defaults"]
    assert docker_pool["networks"] == [spec["networks"]["default"]["name"]]
    assert docker_pool["env"]["MLFLOW_TRACKING_URI"] == worker_env["MLFLOW_TRACKING_URI"]
    workspace_volume = docker_pool["volumes"][0].split(":")[0]
    assert spec["volumes"][workspace_volume]["name"] == workspace_volume
    assert f"{workspace_volume}:/var/lib/pipeline" in services["worker"]["volumes"]
    docker_worker = services["docker-worker"]["command"]
    assert docker_worker[docker_worker.index("--type") + 1] == "docker"


def test_compose_commands_exist():
    from typer.testing import CliRunner

    from pipeline.cli.main import app

    command = compose()["services"]["worker"]["command"]
    assert command[:2] == ["pipeline", "deploy"]
    options = [a for a in command[2:] if a.startswith("--")]
    help_text = CliRunner().invoke(app, ["deploy", "--help"], terminal_width=200).output
    for option in options:
        assert option in help_text, option


def test_container_deployments_match_prefect_yaml_and_their_steps_bind():
    containers = yaml.safe_load((ROOT / "deployments" / "prefect-containers.yaml").read_text())
    plain = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    by_name = {d["name"]: d for d in plain["deployments"]}
    assert [d["name"] for d in containers["deployments"]] == [d["name"] for d in plain["deployments"]]
    for deployment in containers["deployments"]:
        same = {k: v for k, v in deployment.items() if k != "work_pool"}
        assert same == {k: v for k, v in by_name[deployment["name"]].items() if k != "work_pool"}
        assert deployment["work_pool"]["job_variables"]["image"] == "{{ build-image.image }}"
        entry = (ROOT / deployment["entrypoint"].split(":")[0]).relative_to(ROOT)
        assert (ROOT / entry).exists() and entry.parts[0] in {"flows"}
    for section in ("build", "push", "pull"):
        for step in containers[section]:
            ((path, params),) = step.items()
            pytest.importorskip(path.split(".")[0])
            module, _, name = path.rpartition(".")
            function = getattr(importlib.import_module(module), name)
            inspect.signature(function).bind(**{k: v for k, v in params.items() if k not in ("id", "requires")})
    build_result = inspect.get_annotations(
        importlib.import_module("prefect_docker.deployments.steps").BuildDockerImageResult
    )
    assert {"image", "image_name", "tag"} <= set(build_result)
    pull = containers["pull"][0]["prefect.deployments.steps.set_working_directory"]["directory"]
    assert pull == next(rest for keyword, rest in dockerfile_instructions() if keyword == "WORKDIR")


def test_the_package_ships_the_pool_files(tmp_path):
    """A non-editable install (the image's) must carry deployments/pools/*.yaml."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source = tmp_path / "source"  # what the Dockerfile copies; building here leaves the checkout untouched
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "src", "flows", "tasks", "deployments", "expectations"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(
            ROOT / name,
            source / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}),
        )
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if built.returncode != 0 and "No module named" in built.stderr:
        pytest.skip(f"cannot build a wheel here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("process", "docker", "kubernetes"):
        assert f"pipeline/deployments/pools/{kind}.yaml" in names
    assert "pipeline/deployments/work_pools.py" in names
