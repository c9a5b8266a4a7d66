"""The layering the code relies on: stages import in one direction, the library never imports Prefect,
the Prefect wiring is reached through one door, and importing a stage is cheap."""

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "src" / "pipeline"
STAGES = ["data", "validation", "training", "evaluation", "registry", "ops", "cli"]
PREFECT_SIDE = ("prefect", "pipeline.flows", "pipeline.tasks", "pipeline.deployments")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def offenders(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    """``file imports module`` for each import of a forbidden package (or a module inside it)."""
    return sorted(
        f"{path.relative_to(folder)} imports {name}"
        for path in folder.rglob("*.py")
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


def test_library_never_imports_prefect_or_the_wiring():
    assert offenders(LIBRARY, PREFECT_SIDE) == []


def test_data_stage_never_imports_training_or_registry():
    assert offenders(LIBRARY / "data", ("pipeline.training", "pipeline.registry", "pipeline.evaluation")) == []


def test_only_the_cli_door_reaches_the_prefect_side():
    """``cli/common.py`` is the one module that names flows and deployments modules to import."""
    users = sorted(str(p.relative_to(ROOT)) for p in LIBRARY.rglob("*.py") if "import_module(" in p.read_text())
    assert users == ["src/pipeline/cli/common.py"]


def test_the_checker_finds_a_nested_forbidden_import(tmp_path):
    """The checker sees imports inside functions too (so the tests above can fail)."""
    (tmp_path / "bad.py").write_text("def f():\n    from pipeline.training.loop import fine_tune\n    import prefect\n")
    assert offenders(tmp_path, ("pipeline.training", "prefect")) == [
        "bad.py imports pipeline.training.loop",
        "bad.py imports pipeline.training.loop.fine_tune",
        "bad.py imports prefect",
    ]


def test_every_package_is_installed():
    """pyproject's package list names every package folder (a new stage package is not silently left out)."""
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"pipeline"} | {
        "pipeline." + p.parent.relative_to(LIBRARY).as_posix().replace("/", ".") for p in LIBRARY.glob("*/__init__.py")
    }
    found |= {f"pipeline.{folder}" for folder in ("flows", "tasks", "deployments", "expectations")}
    assert declared == found


def test_no_generic_top_level_names_are_installed():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert all(name == "pipeline" or name.startswith("pipeline.") for name in declared)


def test_modules_stay_small():
    long = {str(p.relative_to(ROOT)): n for p in LIBRARY.rglob("*.py") if (n := len(p.read_text().splitlines())) > 330}
    assert long == {}


@pytest.mark.parametrize(
    "module",
    [f"pipeline.{s}" for s in STAGES]
    + ["pipeline.flows.training", "pipeline.flows.retraining", "pipeline.deployments.definitions"],
)
def test_importing_a_stage_or_flow_is_cheap(module):
    """Stage packages import neither torch nor Prefect nor MLflow; flow modules import no torch."""
    code = f"import sys, json, {module}; print(json.dumps([m for m in ('torch', 'prefect', 'mlflow') if m in sys.modules]))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
    )
    assert out.returncode == 0, out.stderr
    heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert "torch" not in heavy
    if not module.startswith(("pipeline.flows", "pipeline.deployments")):
        assert heavy == []
