"""Dependencies (issue 11): floors above releases with known advisories, one constraints file that
pins every release the Makefile installs (and CI therefore runs), and an audit step in CI."""
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
REQUIREMENTS = [Requirement(r) for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["test"]]
PINS = {canonicalize_name(name): Version(version) for name, version in
        re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s#]+)", (ROOT / "constraints.txt").read_text(), re.M)}

# Releases below these have published advisories (the list).
FLOORS = {"gunicorn": "22", "pyjwt": "2.13", "requests": "2.32.4"}


@pytest.mark.parametrize("name, floor", sorted(FLOORS.items()))
def test_no_release_below_the_floor_is_admitted(name, floor):
    [requirement] = [r for r in REQUIREMENTS if canonicalize_name(r.name) == name]
    below = Version(floor)
    older = [v for v in (f"{below.major}.{below.minor}.{max(below.micro - 1, 0)}", f"{below.major - 1}.99")
             if Version(v) < below]
    assert not any(requirement.specifier.contains(v) for v in older), requirement


def test_every_dependency_is_pinned_in_the_constraints_file_within_its_range():
    for requirement in REQUIREMENTS:
        name = canonicalize_name(requirement.name)
        assert name in PINS, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(PINS[name], prereleases=True), (requirement, PINS[name])


def test_the_makefile_installs_from_the_constraints_and_ci_audits_them():
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and "-e " in line]
    assert len(installs) == 2 and all("-c constraints.txt" in line for line in installs)
    assert re.search(r"^audit:", makefile, re.M) and ".ci/audit" in makefile
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("make audit") < ci.index("make test")
    assert "SKIPPED" in (ROOT / ".ci" / "audit").read_text()  # offline: says so, never a silent pass
