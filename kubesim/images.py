"""Image references as containerd reports them, and the runtime's pull error messages."""

from __future__ import annotations

import hashlib

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "csh", "tcsh", "busybox-sh"})


def split_ref(ref: str) -> tuple[str, str, str | None]:
    """(repository, tag, digest) with Docker's normalization: `nginx` -> docker.io/library/nginx."""
    digest: str | None = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    name, tag = ref, ""
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        name, tag = ref[:colon], ref[colon + 1 :]
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if not tag and digest is None:
        tag = "latest"
    return name, tag, digest


def normalize(ref: str) -> str:
    repo, tag, digest = split_ref(ref)
    return f"{repo}@{digest}" if digest else f"{repo}:{tag}"


def digest_of(ref: str, resolved: str | None = None) -> str:
    """The reference's own digest, else the one a real registry resolved it to, else a fake
    one derived from the name."""
    repo, tag, digest = split_ref(ref)
    return digest or resolved or "sha256:" + hashlib.sha256(f"{repo}:{tag}".encode()).hexdigest()


def image_names(ref: str, resolved: str | None = None) -> list[str]:
    """`node.status.images[].names`: the digest form first, then the tag form, as containerd."""
    repo, tag, digest = split_ref(ref)
    names = [f"{repo}@{digest_of(ref, resolved)}"]
    if not digest:
        names.append(f"{repo}:{tag}")
    return names


def image_id(ref: str, resolved: str | None = None) -> str:
    return f"{split_ref(ref)[0]}@{digest_of(ref, resolved)}"


def pull_error(kind: str, ref: str) -> str:
    """The CRI error a containerd runtime returns for a failed pull (the kubelet's message)."""
    full = normalize(ref)
    repo, tag, _ = split_ref(ref)
    host, _, path = repo.partition("/")
    manifest = f"https://{host}/v2/{path}/manifests/{tag or digest_of(ref)}"
    head = f'failed to pull and unpack image "{full}": failed to resolve reference "{full}"'
    if kind == "notFound":
        return f"rpc error: code = NotFound desc = {head}: {full}: not found"
    if kind == "insufficientScope":
        # A token-auth registry (Docker Hub, Harbor, ...) will not say a repository is missing:
        # the token for it lacks the scope, so containerd's resolver reports an auth failure.
        return (
            f"rpc error: code = Unknown desc = {head}: pull access denied, repository does not "
            "exist or may require authorization: server message: insufficient_scope: "
            "authorization failed"
        )
    if kind == "platform":
        # containerd images.Manifest: the index has no entry for the node's platform.
        return (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{full}": '
            "no match for platform in manifest: not found"
        )
    if kind == "unauthorized":
        return (
            f"rpc error: code = Unknown desc = {head}: pull access denied, repository does not "
            "exist or may require authorization: authorization failed: 401 Unauthorized"
        )
    if kind == "tooManyRequests":
        return (
            f"rpc error: code = Unknown desc = {head}: unexpected status from HEAD request to "
            f"{manifest}: 429 Too Many Requests - Server message: toomanyrequests: "
            "You have reached your pull rate limit."
        )
    return (
        f"rpc error: code = Unknown desc = {head}: unexpected status from HEAD request to "
        f"{manifest}: 500 Internal Server Error"
    )


def create_error(container: str, pod: str, namespace: str, uid: str, attempt: int) -> str:
    """containerd's transient name-reservation conflict (a slow or overloaded runtime)."""
    name = f"{container}_{pod}_{namespace}_{uid}_{attempt}"
    held = hashlib.sha256(name.encode()).hexdigest()
    return f'failed to reserve container name "{name}": name "{name}" is reserved for "{held}"'


def backoff_message(image: str, last_error: str | None, kubelet_version: str) -> str:
    """The ImagePullBackOff waiting message: from kubelet 1.32 on it carries the last pull error
    (kubernetes/kubernetes#127918, merged for 1.32: `image_manager.go` `prevPullErrMsg`)."""
    base = f'Back-off pulling image "{image}"'
    if kubelet_minor(kubelet_version) >= 32 and last_error:
        return f"{base}: ErrImagePull: {last_error}"
    return base


def kubelet_minor(version: str) -> int:
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return 99


def start_error(executable: str) -> str:
    return (
        "failed to create containerd task: failed to create shim task: OCI runtime create "
        "failed: runc create failed: unable to start container process: error during container "
        f'init: exec: "{executable}": executable file not found in $PATH: unknown'
    )
