"""requirements.lock, which `make install` and CI install from, agrees with pyproject.toml:
every dependency (runtime and development) is locked at a version its range allows, with
hashes. A dependency added or re-ranged without `make lock` fails here, not in production.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOCK = (ROOT / "requirements.lock").read_text()
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.MULTILINE)


def _locked() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in PIN.findall(LOCK)}


REQUIREMENTS = [
    Requirement(text)
    for text in [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["dev"]]
]


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=str)
def test_every_dependency_is_locked_within_its_range(requirement: Requirement) -> None:
    locked = _locked()
    name = canonicalize_name(requirement.name)
    assert name in locked, f"{requirement.name} is not in requirements.lock: run make lock"
    assert requirement.specifier.contains(locked[name], prereleases=True), (
        f"requirements.lock has {name}=={locked[name]}, outside {requirement}: run make lock"
    )


def test_every_locked_package_has_hashes() -> None:
    entries = re.split(r"\n(?=[A-Za-z0-9])", LOCK.split("\n", 2)[-1].strip())
    pinned = [entry for entry in entries if PIN.match(entry)]
    assert len(pinned) == len(_locked()) > 0
    for entry in pinned:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]
