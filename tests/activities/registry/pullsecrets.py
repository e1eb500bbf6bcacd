"""A dockerconfigjson pull secret for a test registry, created in a kubesim cluster."""

from __future__ import annotations

import base64
import json

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from kubesim.testing import SimHandle


def create_pull_secret(
    sim: SimHandle, name: str, host: str, user: str, password: str, namespace: str = "default"
) -> None:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    cfg = json.dumps({"auths": {host: {"auth": auth}}}).encode()
    api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(sim.kubeconfig_path)))
    api.create_namespaced_secret(
        namespace,
        k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=name),
            type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": base64.b64encode(cfg).decode()},
        ),
    )
