"""uv.lock is what ./just, CI and the image install (`uv sync --frozen`: the lock as it
is, never re-resolved). These checks catch, without a network, a lock that no longer
matches pyproject.toml (a dependency added without `just lock`) and the uv pins
drifting apart."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
LOCK = tomllib.loads((REPO / "uv.lock").read_text())
RELOCK = "pyproject.toml changed since uv.lock was made: run `just lock`"

Wanted = set[tuple[str, str, str]]


def _project() -> dict[str, Any]:
    [project] = [p for p in LOCK["package"] if p["name"] == PYPROJECT["project"]["name"]]
    return project


def _key(name: str, specifier: str, marker: str) -> tuple[str, str, str]:
    # SpecifierSet's own order, so that ">=1,<2" and "<2,>=1" compare equal
    spec = ",".join(sorted(str(s) for s in SpecifierSet(specifier)))
    return canonicalize_name(name), spec, marker


def _pyproject_requirements() -> Wanted:
    wanted = set()
    for line in PYPROJECT["project"]["dependencies"]:
        req = Requirement(line)
        wanted.add(_key(req.name, str(req.specifier), str(req.marker or "")))
    for extra, lines in PYPROJECT["project"].get("optional-dependencies", {}).items():
        for line in lines:
            req = Requirement(line)
            assert req.marker is None, f"{line}: the check below assumes no markers"
            wanted.add(_key(req.name, str(req.specifier), f"extra == '{extra}'"))
    return wanted


def test_the_lock_matches_pyproject() -> None:
    meta = _project()["metadata"]
    locked = {
        _key(r["name"], r.get("specifier", ""), r.get("marker", "")) for r in meta["requires-dist"]
    }
    assert locked == _pyproject_requirements(), RELOCK
    assert set(meta.get("provides-extras", [])) == set(
        PYPROJECT["project"].get("optional-dependencies", {})
    ), RELOCK
    assert SpecifierSet(LOCK["requires-python"]) == SpecifierSet(
        PYPROJECT["project"]["requires-python"]
    ), RELOCK


def test_every_locked_artifact_carries_a_hash() -> None:
    registry = [p for p in LOCK["package"] if "registry" in p["source"]]
    assert len(registry) > 20, "the lock lists the dependencies"
    for package in registry:
        artifacts = [
            *package.get("wheels", []),
            *([package["sdist"]] if "sdist" in package else []),
        ]
        assert artifacts, package["name"]
        for artifact in artifacts:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", artifact.get("hash", "")), (
                package["name"],
                artifact.get("url"),
            )


def test_uv_is_pinned_to_one_version_everywhere() -> None:
    """./just installs uv with pip and then lets it sync; the dev extra lists the same
    version (else the exact sync would remove or replace the running uv); the image's
    build stage installs it too."""
    [bootstrap] = re.findall(r"^UV_VERSION=(\S+)$", (REPO / "just").read_text(), re.M)
    dev = [Requirement(line) for line in PYPROJECT["project"]["optional-dependencies"]["dev"]]
    [uv] = [r for r in dev if r.name == "uv"]
    assert str(uv.specifier) == f"=={bootstrap}"
    assert [p["version"] for p in LOCK["package"] if p["name"] == "uv"] == [bootstrap]
    assert re.findall(r"\buv==(\S+)", (REPO / "Dockerfile").read_text()) == [bootstrap]
