"""The operator's policy on what a caller may ask for: a 403 naming the rule and its setting.

The spec is already valid (common.models); this decides whether it is *allowed* here. Each rule
and the setting that relaxes it are described in docs/security.md.
"""

from __future__ import annotations

from api.errors import PolicyViolation
from common.models import IMAGE_REFERENCE_RE, ImagePullPolicy, TaskSpec, TolerationOperator
from common.settings import Settings

DEFAULT_REGISTRY = "docker.io"
# Taints (and labels) kubeadm and most distributions put on control-plane nodes.
CONTROL_PLANE_TAINT_KEYS = frozenset(
    {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}
)


def normalized_repository(image: str) -> str:
    """The repository as a runtime resolves it: `nginx` -> `docker.io/library/nginx`.

    Docker's rule (distribution/reference normalize.go, splitDockerDomain): the first component
    is a registry when it has a '.' or a ':' or is `localhost`; otherwise the image is on
    Docker Hub, under `library/` when it has a single component."""
    match = IMAGE_REFERENCE_RE.fullmatch(image.strip())
    name = match.group("name") if match else image
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_REGISTRY, name
    if domain == "index.docker.io":
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return f"{domain}/{path}"


def registry_allowed(image: str, prefixes: list[str]) -> bool:
    """A prefix matches whole path components: `reg.io/team` allows `reg.io/team/app`,
    not `reg.io/teammate/app` nor `reg.io.evil.com/x`."""
    repo = normalized_repository(image)
    for prefix in prefixes:
        allowed = prefix.strip().rstrip("/")
        if allowed and (repo == allowed or repo.startswith(allowed + "/")):
            return True
    return False


def check_policy(spec: TaskSpec, settings: Settings) -> None:
    """Raise PolicyViolation (403) naming the field, the rule and the setting."""
    if settings.ips_allowed_registries:
        for i, image in enumerate(spec.images):
            if not registry_allowed(image, settings.ips_allowed_registries):
                raise PolicyViolation(
                    f"images[{i}]: {image!r} ({normalized_repository(image)}) is not under an "
                    f"allowed registry prefix (IPS_ALLOWED_REGISTRIES: "
                    f"{', '.join(settings.ips_allowed_registries)})"
                )
    allowed_secrets = set(settings.ips_allowed_pull_secrets)
    for i, secret in enumerate(spec.image_pull_secrets):
        if secret not in allowed_secrets:
            raise PolicyViolation(
                f"imagePullSecrets[{i}]: secret {secret!r} is not allowed "
                "(IPS_ALLOWED_PULL_SECRETS lists the pull secrets a task may use)"
            )
    if spec.image_pull_policy == ImagePullPolicy.ALWAYS and not settings.ips_allow_always_pull:
        raise PolicyViolation(
            "imagePullPolicy: Always is not allowed here (IPS_ALLOW_ALWAYS_PULL=false)"
        )
    if not settings.ips_allow_control_plane:
        for key in spec.node_selector:
            if key in CONTROL_PLANE_TAINT_KEYS:
                raise PolicyViolation(
                    f"nodeSelector: {key} selects control-plane nodes, which is not allowed "
                    "here (IPS_ALLOW_CONTROL_PLANE=false)"
                )
    for i, toleration in enumerate(spec.tolerations):
        if (
            not toleration.key
            and toleration.operator == TolerationOperator.EXISTS
            and not settings.ips_allow_keyless_tolerations
        ):
            raise PolicyViolation(
                f"tolerations[{i}]: a keyless Exists toleration tolerates every taint and is "
                "not allowed here (IPS_ALLOW_KEYLESS_TOLERATIONS=false)"
            )
        if toleration.key in CONTROL_PLANE_TAINT_KEYS and not settings.ips_allow_control_plane:
            raise PolicyViolation(
                f"tolerations[{i}]: tolerating {toleration.key} would pull onto control-plane "
                "nodes, which is not allowed here (IPS_ALLOW_CONTROL_PLANE=false)"
            )
