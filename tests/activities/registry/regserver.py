"""A real OCI registry for tests: Debian's `docker-registry` (CNCF distribution 2.8).

Everything here is generated locally, nothing is downloaded:

- `make_ca` / `make_server_cert`: a test CA and a 127.0.0.1/localhost server certificate
  (the `openssl` command line);
- `Registry`: one registry process bound to 127.0.0.1 on a free port, plain HTTP or TLS, with
  htpasswd auth (bcrypt, `htpasswd -B`), token auth (a `TokenServer` in this process) or none.
  Its configuration is written in full (distribution's defaults listen on every interface, on
  :5000, and read `REGISTRY_*` variables as overrides, so those are removed from its env);
- `OciImage` / `build_layout`: OCI image layouts written by hand (a tar.gz layer, a config, a
  manifest, optionally an index over several platforms), pushed with `skopeo copy --all
  --preserve-digests`, so the digests the registry serves are the ones computed here.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlparse

import httpx

from tests.waiting import wait_until

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

TOOLS = ("docker-registry", "skopeo", "htpasswd", "openssl")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*cmd: str, **kw: Any) -> subprocess.CompletedProcess[Any]:
    kw.setdefault("text", True)
    return subprocess.run(cmd, check=True, capture_output=True, timeout=120, **kw)


# --- certificates ---------------------------------------------------------------------------


@dataclass
class CA:
    cert: Path
    key: Path


def make_ca(d: Path, name: str = "ips-test-ca") -> CA:
    d.mkdir(parents=True, exist_ok=True)
    ca = CA(d / f"{name}.crt", d / f"{name}.key")
    _run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", str(ca.key), "-out", str(ca.cert), "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip
    return ca


def make_server_cert(ca: CA, d: Path, name: str = "registry") -> tuple[Path, Path]:
    key, csr, cert = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
    ext = d / f"{name}.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    _run(
        "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
        "-out", str(csr), "-subj", "/CN=127.0.0.1",
    )  # fmt: skip
    _run(
        "openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-days", "2", "-out", str(cert), "-extfile", str(ext),
    )  # fmt: skip
    return cert, key


# --- token auth (the distribution token spec, RS256 JWTs with an x5c chain) -----------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The `realm` of a token-auth registry: anonymous pull on `public/*`, everything for the
    user with the right password, nothing otherwise (the registry then answers 401)."""

    def __init__(self, d: Path, *, service: str, issuer: str, user: str, password: str) -> None:
        self.service, self.issuer, self.user, self.password = service, issuer, user, password
        self.ca = make_ca(d, "token-signer")
        der = _run("openssl", "x509", "-in", str(self.ca.cert), "-outform", "DER", text=False)
        self.x5c = base64.b64encode(der.stdout).decode()
        self.requests: list[dict[str, Any]] = []
        server = self
        self.port = free_port()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                q = parse_qs(urlparse(self.path).query)
                body, code = server.issue(q, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def issue(self, q: dict[str, list[str]], authorization: str | None) -> tuple[dict, int]:
        user = None
        if authorization and authorization.startswith("Basic "):
            u, _, p = base64.b64decode(authorization[6:]).decode().partition(":")
            if (u, p) != (self.user, self.password):
                return {"details": "incorrect username or password"}, 401
            user = u
        self.requests.append({"query": q, "user": user})
        access = []
        for scope in q.get("scope", []):
            typ, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            wanted = actions.split(",")
            allowed = wanted if user else [a for a in wanted if a == "pull"]
            if not user and not name.startswith("public/"):
                allowed = []
            access.append({"type": typ, "name": name, "actions": allowed})
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": user or "", "aud": self.service, "exp": now + 300,
            "nbf": now - 5, "iat": now, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        sig = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.ca.key)],
            input=signing_input.encode(), capture_output=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        return {"token": f"{signing_input}.{_b64url(sig)}", "expires_in": 300}, 200

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the registry process -------------------------------------------------------------------


@dataclass
class Registry:
    """One running registry: `host` is `127.0.0.1:PORT`."""

    root: Path
    tls: bool = False
    htpasswd: tuple[str, str] | None = None
    token: TokenServer | None = None
    ca: CA | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def config(self) -> dict[str, Any]:
        http: dict[str, Any] = {
            "addr": self.host,  # loopback only (the packaged default is ":5000")
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        }
        if self.tls:
            assert self.ca is not None
            cert, key = make_server_cert(self.ca, self.root)
            http["tls"] = {"certificate": str(cert), "key": str(key)}
        cfg: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root / "data")},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self.htpasswd:
            user, password = self.htpasswd
            path = self.root / "htpasswd"
            _run("htpasswd", "-Bbc", str(path), user, password)
            cfg["auth"] = {"htpasswd": {"realm": "ips-test", "path": str(path)}}
        elif self.token:
            cfg["auth"] = {
                "token": {
                    "realm": self.token.realm,
                    "service": self.token.service,
                    "issuer": self.token.issuer,
                    "rootcertbundle": str(self.token.ca.cert),
                }
            }
        return cfg

    def start(self) -> Registry:
        self.root.mkdir(parents=True, exist_ok=True)
        cfg_path = self.root / "config.yml"
        cfg_path.write_text(json.dumps(self.config(), indent=1))  # JSON is YAML
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        self.log = (self.root / "registry.log").open("wb")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(cfg_path)], stdout=self.log, stderr=self.log, env=env
        )
        verify: Any = ssl.create_default_context(cafile=str(self.ca.cert)) if self.ca else False

        def answering() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"registry exited: {(self.root / 'registry.log').read_text()}")
            r = httpx.get(f"{self.url}/v2/", verify=verify, timeout=2)
            return r.status_code in (200, 401)

        wait_until(
            answering,
            30,
            interval=0.1,
            message="registry did not answer",
            ignore=(httpx.HTTPError,),
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.log is not None:
            self.log.close()

    def push(self, layout: Path, tag: str, repo: str) -> None:
        """`skopeo copy --all --preserve-digests oci:LAYOUT:TAG docker://HOST/REPO:TAG`."""
        cmd = ["skopeo", "--insecure-policy", "copy", "--all", "--preserve-digests", "-q"]
        if self.tls:
            assert self.ca is not None
            certs = self.root / "skopeo-certs"
            certs.mkdir(exist_ok=True)
            shutil.copy(self.ca.cert, certs / "ca.crt")
            cmd += ["--dest-cert-dir", str(certs)]
        else:
            cmd += ["--dest-tls-verify=false"]
        if self.htpasswd:
            cmd += ["--dest-creds", ":".join(self.htpasswd)]
        elif self.token:
            cmd += ["--dest-creds", f"{self.token.user}:{self.token.password}"]
        env = dict(os.environ, HOME=str(self.root), XDG_RUNTIME_DIR=str(self.root))
        env.pop("REGISTRY_AUTH_FILE", None)
        cmd += [f"oci:{layout}:{tag}", f"docker://{self.host}/{repo}:{tag}"]
        _run(*cmd, env=env)


# --- OCI layouts ---------------------------------------------------------------------------


def _blob(d: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (d / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (d / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _layer(name: str, payload: bytes) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, mtime=0), f"sha256:{hashlib.sha256(tar_bytes).hexdigest()}"


@dataclass
class PlatformBuilt:
    os: str
    architecture: str
    manifest_digest: str
    layers_size: int


@dataclass
class OciImage:
    """What a built layout holds: the top digest and, per platform, the manifest and sizes."""

    layout: Path
    tag: str
    digest: str
    media_type: str
    platforms: list[PlatformBuilt]


def build_layout(d: Path, tag: str, platforms: list[tuple[str, str]], *, index: bool) -> OciImage:
    """An OCI layout with one image per (os, arch); `index` wraps them in an image index.
    Layers hold random bytes of different sizes, so every platform's size is distinct."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    built: list[PlatformBuilt] = []
    descs: list[dict[str, Any]] = []
    for i, (os_, arch) in enumerate(platforms):
        layers = []
        diff_ids = []
        for j in range(2):
            gz, diff_id = _layer(f"{arch}-{j}", secrets.token_bytes(1000 * (i + 1) + 137 * j))
            layers.append(_blob(d, gz, OCI_LAYER))
            diff_ids.append(diff_id)
        config = {
            "architecture": arch,
            "os": os_,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {},
        }
        cdesc = _blob(d, json.dumps(config).encode(), OCI_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": cdesc,
            "layers": layers,
        }
        mdesc = _blob(d, json.dumps(manifest).encode(), OCI_MANIFEST)
        built.append(PlatformBuilt(os_, arch, mdesc["digest"], sum(x["size"] for x in layers)))
        descs.append({**mdesc, "platform": {"architecture": arch, "os": os_}})
    if index:
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}
        top = _blob(d, json.dumps(idx).encode(), OCI_INDEX)
    else:
        assert len(descs) == 1
        top = {k: v for k, v in descs[0].items() if k != "platform"}
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return OciImage(d, tag, top["digest"], top["mediaType"], built)
