"""The hashed locks agree with pyproject.toml, and every install goes through them (issue 14 §9).

requirements.txt (runtime: Heroku, the image), requirements-test.txt (runtime + the `test`
extra: scripts/test, CI) and requirements-build.txt (the build backend) are made by
scripts/lock; these tests fail when pyproject.toml changes without a new lock.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
RUNTIME, TEST, BUILD = "requirements.txt", "requirements-test.txt", "requirements-build.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
# Where the locks are installed: CPython 3.11 on Linux (Heroku, the image, CI).
LINUX_311 = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "python_full_version": "3.11.14",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "extra": "",
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]

    def applies(self) -> bool:
        return self.marker is None or self.marker.evaluate(dict(LINUX_311))


def lines(name: str) -> list[str]:
    """The lock's logical lines: continuations joined, comments and blanks dropped."""
    text = (ROOT / name).read_text().replace("\\\n", " ")
    return [s for line in text.splitlines() if (s := line.split("#", 1)[0].strip())]


def header(name: str) -> str:
    return "\n".join(line for line in (ROOT / name).read_text().splitlines()[:3])


def pins(name: str) -> dict[str, list[Pin]]:
    found: dict[str, list[Pin]] = {}
    for line in lines(name):
        spec, *hashes = re.split(r"\s+--hash=", line)
        req = Requirement(spec)
        [clause] = req.specifier
        assert clause.operator == "==" and "*" not in clause.version, f"{name}: {spec} not exact"
        pin = Pin(canonicalize_name(req.name), Version(clause.version), req.marker, tuple(hashes))
        found.setdefault(pin.name, []).append(pin)
    return found


def pinned(name: str, package: str) -> Pin:
    """The one pin of `package` that a 3.11 Linux install takes from the lock."""
    applying = [p for p in pins(name).get(canonicalize_name(package), []) if p.applies()]
    assert len(applying) == 1, f"{package} is not pinned (once) in {name}: run scripts/lock"
    return applying[0]


RUNTIME_DEPS = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
TEST_DEPS = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]]
BUILD_DEPS = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]


@pytest.mark.parametrize(
    ("lock", "deps"),
    [(RUNTIME, RUNTIME_DEPS), (TEST, RUNTIME_DEPS + TEST_DEPS), (BUILD, BUILD_DEPS)],
)
def test_each_dependency_is_pinned_at_a_version_pyproject_admits(
    lock: str, deps: list[Requirement]
) -> None:
    for req in deps:
        pin = pinned(lock, req.name)
        assert req.specifier.contains(pin.version, prereleases=True), (
            f"{lock} pins {req.name}=={pin.version}, outside pyproject's {req}: run scripts/lock"
        )


@pytest.mark.parametrize("lock", [RUNTIME, TEST, BUILD])
def test_every_line_is_an_exact_pin_with_sha256_hashes(lock: str) -> None:
    found = pins(lock)
    assert found
    for pin in (p for group in found.values() for p in group):
        assert pin.hashes, f"{lock}: {pin.name} has no hash"
        for h in pin.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", h), f"{lock}: {pin.name} {h}"
    # Nothing may send pip elsewhere than PyPI, or install an unhashed path or URL.
    assert not [s for s in lines(lock) if s.startswith("-")]


@pytest.mark.parametrize("lock", [RUNTIME, TEST, BUILD])
def test_the_locks_are_made_for_python_311_with_hashes(lock: str) -> None:
    made_by = header(lock)
    assert "--python-version 3.11 " in made_by and "--generate-hashes" in made_by, made_by
    assert (ROOT / ".python-version").read_text().strip() == "3.11"  # Heroku's interpreter
    assert Requirement(f"x{PYPROJECT['project']['requires-python']}").specifier.contains("3.11")


def test_tests_run_the_versions_that_are_deployed() -> None:
    runtime, test = pins(RUNTIME), pins(TEST)
    for name, group in runtime.items():
        want = [(p.version, p.hashes) for p in group]
        got = [(p.version, p.hashes) for p in test.get(name, [])]
        assert got == want, f"{name}: {TEST} differs from {RUNTIME}: run scripts/lock"
        # A test dependency may need it more widely (Playwright needs greenlet on any
        # Python), never more narrowly.
        for deployed, tested in zip(group, test[name], strict=True):
            assert tested.marker in (None, deployed.marker), f"{name}: {TEST} narrows it"


def test_this_virtualenv_was_installed_from_the_test_lock() -> None:
    """scripts/test (so CI) runs the suite on exactly the locked versions."""
    for group in pins(TEST).values():
        for pin in (p for p in group if p.applies()):
            installed = Version(importlib.metadata.version(pin.name))
            assert installed == pin.version, (
                f"{pin.name} {installed} installed, {pin.version} locked: rerun ./scripts/test"
            )


def test_minimums_are_past_the_advisories_and_internals_are_capped() -> None:
    deps = {canonicalize_name(r.name): r.specifier for r in RUNTIME_DEPS}
    # The last releases with published advisories that pyproject must refuse.
    for name, vulnerable in [
        ("gunicorn", "22.0.0"),
        ("requests", "2.32.3"),
        ("urllib3", "2.5.0"),
        ("werkzeug", "3.0.5"),
    ]:
        assert name in deps and not deps[name].contains(vulnerable), (name, deps.get(name))
    # Private internals are read (bridge/redis_client.py, bridge/metrics.py): the next major
    # of what is locked is refused.
    for name in ("redis", "prometheus-client"):
        locked = pinned(RUNTIME, name).version
        next_major = f"{locked.major + 1}.0.0" if locked.major else "1.0.0"
        assert not deps[name].contains(next_major, prereleases=True), (name, deps[name])


def test_the_image_installs_only_from_the_locks() -> None:
    installs = re.findall(r"pip (?:--python \S+ )?install ([^\n\\&]*)", DOCKERFILE)
    assert "--require-hashes -r requirements.txt" in [s.strip() for s in installs]
    assert "--require-hashes -r requirements-build.txt" in [s.strip() for s in installs]
    for args in installs:
        assert "--require-hashes" in args or "--no-deps" in args, args
    assert "--no-build-isolation" in DOCKERFILE  # else pip fetches setuptools unhashed
    assert re.search(r"^COPY requirements\.txt requirements-build\.txt \./$", DOCKERFILE, re.M)
    # The build context keeps the locks (.dockerignore: the last matching line decides).
    rules = [s for s in (ROOT / ".dockerignore").read_text().splitlines() if s and s[0] != "#"]
    for lock in (RUNTIME, BUILD):
        excluded = False
        for rule in rules:
            if fnmatch.fnmatch(lock, rule.removeprefix("!")):
                excluded = not rule.startswith("!")
        assert not excluded, f".dockerignore drops {lock}"


def test_the_scripts_install_only_from_the_locks() -> None:
    lib = (ROOT / "scripts" / "lib.sh").read_text()
    body = lib[lib.index("ensure_venv() {") : lib.index("ensure_example_plugin() {")]
    installs = re.findall(r"pip install -q (.*)", body)
    assert installs[0] == "--upgrade pip >/dev/null"
    assert installs[1] == '--require-hashes -r requirements-build.txt -r "$lock"'
    assert installs[2] == "--no-deps --no-build-isolation -e ."
    assert len(installs) == 3
    # "." takes requirements.txt and ".[test]" requirements-test.txt.
    assert 'lock="requirements${extras:+-$extras}.txt"' in body
    assert 'ensure_venv "."' in (ROOT / "scripts" / "dev").read_text()
    assert 'ensure_venv ".[test]"' in (ROOT / "scripts" / "test").read_text()
    # Besides the locks: the example plug-in from this checkout, without dependencies.
    plugin = lib[lib.index("ensure_example_plugin() {") :]
    plugin = plugin[: plugin.index("\n}\n")]
    assert re.findall(r"pip install -q (.*)", plugin) == [
        "--no-deps --no-build-isolation -e tests/plugins/example_desk"
    ]


def test_the_base_image_is_pinned_to_a_patch_release() -> None:
    images = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert len(images) == 2 and len(set(images)) == 1, images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", images[0]), images[0]
