"""Build and run the real container image with buildah (no Docker engine needed).

The Dockerfile is built unchanged: only its PYTHON_IMAGE build argument points at a local
stand-in for python:3.11-slim-bookworm, a Debian bookworm made by debootstrap from the mirror in
this machine's apt sources, with the host's CA bundle (pip inside the build then reaches the
package index exactly as the host does). That base is cached in buildah's storage under a tag
keyed by the date, so runs on one machine on one day make it once; a fresh machine makes it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE_REPO = "localhost/ips-test-base"
BASE_PACKAGES = "python3,python3-venv,python-is-python3,ca-certificates"
SUITE = "bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Lines for the test run's summary (tests/image/conftest.py): build time, image size.
FIGURES: list[str] = []
APT_SOURCES = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]


def missing_tools() -> list[str]:
    return [t for t in ("buildah", "debootstrap") if shutil.which(t) is None]


def run(*args: str, timeout: float = 600, **kwargs: object) -> str:
    res = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )  # type: ignore[call-overload]
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return str(res.stdout)


def apt_mirror() -> str | None:
    """The Debian mirror this machine's apt reads (never written down in the repository): the
    first non-security `deb` source, from one-line or deb822 (.sources) files."""
    for path in APT_SOURCES:
        if not path.is_file() or path.suffix not in (".list", ".sources", ""):
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for block in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip(), v.strip())
                    for k, _, v in (
                        line.partition(":")
                        for line in block.splitlines()
                        if ":" in line and not line.startswith(("#", " "))
                    )
                )
                if fields.get("Enabled", "yes") == "no" or "deb" not in fields.get("Types", ""):
                    continue
                for uri in fields.get("URIs", "").split():
                    if "security" not in uri and uri.startswith("http"):
                        return uri
        else:
            for line in text.splitlines():
                m = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(http\S+)", line)
                if m and "security" not in m.group(1):
                    return m.group(1)
    return None


def _image_exists(ref: str) -> bool:
    res = subprocess.run(
        ["buildah", "inspect", "--type", "image", ref], capture_output=True, check=False
    )
    return res.returncode == 0


def base_image(mirror: str) -> tuple[str, bool]:
    """The debootstrapped base image (made now, or today's cached one); (ref, made_now)."""
    ref = f"{BASE_REPO}:{SUITE}-{datetime.now(UTC):%Y%m%d}"
    if _image_exists(ref):
        return ref, False
    with tempfile.TemporaryDirectory(prefix="ips-base-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            "debootstrap",
            "--variant=minbase",
            f"--include={BASE_PACKAGES}",
            SUITE,
            str(rootfs),
            mirror,
            timeout=1200,
        )
        shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
        for junk in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            junk.unlink()
        ctr = run("buildah", "from", "scratch").strip()
        try:
            mnt = run("buildah", "mount", ctr).strip()
            # tar keeps owners, modes, links and devices exactly
            run("sh", "-c", f"tar -C {rootfs} -cf - . | tar -C {mnt} -xpf -", timeout=600)
            run("buildah", "umount", ctr)
            run(
                "buildah", "config",
                "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env", "LANG=C.UTF-8",
                "--cmd", "python3",
                ctr,
            )  # fmt: skip
            run("buildah", "commit", "--rm", ctr, ref, timeout=600)
        except BaseException:
            subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)
            raise
    # Older days' bases are not needed any more.
    for line in run("buildah", "images", "--format", "{{.Name}}:{{.Tag}}").splitlines():
        if line.startswith(f"{BASE_REPO}:") and line != ref:
            subprocess.run(["buildah", "rmi", line], capture_output=True, check=False)
    return ref, True


@dataclass
class Built:
    ref: str
    seconds: float
    size_bytes: int  # the whole root filesystem, unpacked
    venv_bytes: int  # /opt/ips: what IPS adds to the base


def build(base: str, tag: str) -> Built:
    """`buildah bud` of the repository's Dockerfile, unchanged, on `base`."""
    start = time.monotonic()
    run(
        "buildah", "bud", "--isolation", "chroot",
        "--build-arg", f"PYTHON_IMAGE={base}",
        "-f", str(ROOT / "Dockerfile"), "-t", tag, str(ROOT),
        timeout=1800,
    )  # fmt: skip
    seconds = time.monotonic() - start
    with container(tag) as ctr:
        mnt = run("buildah", "mount", ctr).strip()
        try:
            size = int(run("du", "-sb", "--one-file-system", mnt).split()[0])
            venv = int(run("du", "-sb", f"{mnt}/opt/ips").split()[0])
        finally:
            run("buildah", "umount", ctr)
    return Built(tag, seconds, size, venv)


def remove_image(ref: str) -> None:
    subprocess.run(["buildah", "rmi", "-f", ref], capture_output=True, check=False)


@contextlib.contextmanager
def container(image: str) -> Iterator[str]:
    """A working container of `image` (for `buildah run` and `buildah mount`)."""
    ctr = run("buildah", "from", "--pull-never", image).strip()
    try:
        yield ctr
    finally:
        subprocess.run(["buildah", "rm", ctr], capture_output=True, check=False)


def run_args(
    ctr: str,
    *cmd: str,
    env: dict[str, str] | None = None,
    volumes: dict[str, str] | None = None,
    user: str = "10001:10001",
) -> list[str]:
    """`buildah run` of `cmd` in `ctr` as `user`, on the host's network."""
    args = ["buildah", "run", "--isolation", "chroot", "--network", "host", "--user", user]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    for host, inside in (volumes or {}).items():
        args += ["--volume", f"{host}:{inside}:ro"]
    return [*args, ctr, "--", *cmd]


def exec_in(
    ctr: str, *cmd: str, timeout: float = 120, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        run_args(ctr, *cmd, **kwargs),  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Background:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the whole group this test started (buildah run and the process in it)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


def start_in(name: str, args: list[str], log_dir: Path) -> Background:
    log = log_dir / f"{name}.log"
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Background(name, popen, log)
