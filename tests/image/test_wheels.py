"""The wheels, built exactly as the Dockerfile builds them (its own RUN line, on the files its
COPY lines take), installed in a clean venv with no editable path: every console script and
every `ips` command answers --help. And a plain `pip install .` (no client) gives a working
`ips` whose client commands say what to install (issue 13, bug 1: it crashed at import).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.image, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IPS_COMMANDS = ["dev", "api", "worker", "sim", "create", "get", "list", "cancel", "watch"]


def _instructions() -> list[str]:
    return [
        line.strip()
        for line in re.sub(r"\\\n", " ", DOCKERFILE.read_text()).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def build_context(dest: Path) -> Path:
    """/src of the build stage: what its COPY lines take from the repository."""
    src = dest / "src"
    src.mkdir()
    for line in _instructions():
        m = re.fullmatch(r"COPY (?!--)(\S+(?: \S+)*) (\S+)", line)
        if not m:
            continue
        for name in m.group(1).split():
            path = ROOT / name
            target = src / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, target)
    return src


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    # Not the test venv's bin: only the new venv's scripts are called, by full path.
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if Path(sys.executable).parent != Path(p)
    )
    return env


def sh(cmd: list[str] | str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def new_venv(path: Path) -> Path:
    base = getattr(sys, "_base_executable", sys.executable)
    res = sh([base, "-m", "venv", str(path)], cwd=path.parent)
    assert res.returncode == 0, res.stderr
    return path / "bin"


def site_packages(venv_bin: Path) -> Path:
    (site,) = (venv_bin.parent / "lib").glob("python3*/site-packages")
    return site


def assert_no_editable(site: Path) -> None:
    assert not list(site.glob("__editable__*")), list(site.glob("__editable__*"))
    for pth in site.glob("*.pth"):
        assert str(ROOT) not in pth.read_text(), pth
    for direct in site.glob("*.dist-info/direct_url.json"):
        assert not json.loads(direct.read_text()).get("dir_info", {}).get("editable"), direct


def console_scripts(site: Path, dist: str) -> list[str]:
    (info,) = site.glob(f"{dist}-*.dist-info")
    entry_points = info / "entry_points.txt"
    if not entry_points.exists():
        return []
    names, section = [], ""
    for line in entry_points.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "console_scripts" and "=" in line:
            names.append(line.split("=")[0].strip())
    return names


@pytest.fixture(scope="module")
def dockerfile_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The build stage's RUN lines, as written, with /opt/ips and /wheels moved under tmp."""
    tmp = tmp_path_factory.mktemp("wheels")
    src = build_context(tmp)
    venv = tmp / "opt-ips"
    venv_bin = new_venv(venv)
    (run,) = [i for i in _instructions() if i.startswith("RUN ") and "pip wheel" in i]
    moved = {"/opt/ips": str(venv), "/wheels": str(tmp / "wheels")}
    cmd = re.sub(r"(?<![\w/.-])(/opt/ips|/wheels)(?=[/\s]|$)", lambda m: moved[m[1]], run[4:])
    res = sh(cmd, cwd=src, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    yield venv_bin


def test_both_wheels_built_and_installed_without_editable_paths(dockerfile_venv: Path) -> None:
    wheels = sorted(p.name for p in (dockerfile_venv.parent.parent / "wheels").glob("*.whl"))
    assert [w.split("-")[0] for w in wheels] == ["ips", "ips_client"], wheels
    site = site_packages(dockerfile_venv)
    assert_no_editable(site)
    for dist in ("ips", "ips_client"):
        assert list(site.glob(f"{dist}-*.dist-info")), dist


def test_every_console_script_answers_help(dockerfile_venv: Path, tmp_path: Path) -> None:
    site = site_packages(dockerfile_venv)
    scripts = console_scripts(site, "ips") + console_scripts(site, "ips_client")
    assert "ips" in scripts
    for script in scripts:
        res = sh([str(dockerfile_venv / script), "--help"], cwd=tmp_path)
        assert res.returncode == 0, f"{script}: {res.stderr[-3000:]}"
    for command in IPS_COMMANDS:
        res = sh([str(dockerfile_venv / "ips"), command, "--help"], cwd=tmp_path)
        assert res.returncode == 0, f"ips {command}: {res.stderr[-3000:]}"
        assert "usage" in res.stdout.lower(), f"ips {command}: {res.stdout}"
        assert "not installed" not in res.stdout, f"ips {command}: {res.stdout}"


def test_plain_pip_install_gives_a_working_ips(tmp_path: Path) -> None:
    """`pip install .` alone (no ips-client): the server commands work; a client command
    says what to install and exits 127, instead of `ips` dying at import."""
    src = build_context(tmp_path)
    venv_bin = new_venv(tmp_path / "venv")
    res = sh([str(venv_bin / "pip"), "install", "--no-cache-dir", "-q", "."], cwd=src, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    site = site_packages(venv_bin)
    assert_no_editable(site)
    assert not list(site.glob("ips_client*")), "plain `pip install .` installs no client"
    for args in (["--help"], ["api", "--help"], ["worker", "--help"], ["sim", "--help"]):
        res = sh([str(venv_bin / "ips"), *args], cwd=tmp_path)
        assert res.returncode == 0, f"ips {' '.join(args)}: {res.stderr[-3000:]}"
        assert "ModuleNotFoundError" not in res.stderr
    res = sh([str(venv_bin / "ips"), "create", "--image", "nginx:latest"], cwd=tmp_path)
    assert res.returncode == 127, res.stderr
    assert "pip install ./client/python" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
