"""The Dockerfile is linted by hadolint and builds the image the manifests and compose expect."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from .conftest import ROOT, tool

pytestmark = pytest.mark.unit

DOCKERFILE = ROOT / "Dockerfile"


def stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def test_hadolint_clean() -> None:
    res = subprocess.run(
        [tool("hadolint"), "--format", "json", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(res.stdout or "[]")
    assert findings == [], findings
    assert res.returncode == 0, res.stderr


def test_hadolint_would_catch_a_regression(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    res = subprocess.run(
        [tool("hadolint"), "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    codes = {f["code"] for f in json.loads(res.stdout)}
    assert {"DL3007", "DL3008"} <= codes


def test_multi_stage_slim_non_root() -> None:
    build, runtime = stages()
    assert re.search(r"AS build$", build[0]) and re.search(r"AS runtime$", runtime[0])
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE.read_text()
    final = "\n".join(runtime)
    # No compilers, package managers' leftovers or pip runs in the final stage.
    for word in ("apt-get", "gcc", "build-essential", "pip install"):
        assert word not in final, word
    assert "COPY --from=build /opt/ips /opt/ips" in final
    (user,) = [i for i in runtime if i.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root UID, so runAsNonRoot can check it"
    assert 'ENTRYPOINT ["dumb-init", "--", "ips"]' in runtime
    assert 'CMD ["api"]' in runtime


def test_uid_matches_manifests_and_compose() -> None:
    text = DOCKERFILE.read_text()
    assert "USER 10001:10001" in text
    assert "runAsUser: 10001" in (ROOT / "deploy/base/api.yaml").read_text()
    assert "${IPS_USER:-10001:10001}" in (ROOT / "docker-compose.yml").read_text()


def test_every_package_is_copied_and_not_ignored() -> None:
    """A package added to the wheel but not to the image would fail only at run time."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE.read_text(), re.M))
    assert copied == packages
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert packages | {"pyproject.toml", "README.md"} <= allowed
    assert pyproject["project"]["scripts"]["ips"] == "cli.main:app"


@pytest.mark.integration
def test_build_stage_context_makes_a_complete_wheel(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What the build stage sees (its COPY lines, minus .dockerignore's excludes) is a project
    that builds into a wheel with every package, kubesim's scenario data and the `ips` script."""
    src = tmp_path / "src"
    src.mkdir()
    for line in DOCKERFILE.read_text().splitlines():
        m = re.fullmatch(r"COPY (?!--)(\S+(?: \S+)*) (\S+)", line.strip())
        if not m:
            continue
        for name in m.group(1).split():
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, src / name)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    (wheel,) = out.glob("ips-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]:
        assert f"{package}/__init__.py" in names, package
    assert "kubesim/scenarios/default.yaml" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ips = cli.main:app" in zipfile.ZipFile(wheel).read(entry_points).decode()
