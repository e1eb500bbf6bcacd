"""The kubelet: image pulls, their failures and events, containers, node status images."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kubernetes import client, watch

from kubesim.testing import SimHandle, start_sim
from tests.kubesim.conftest import job_body, job_done, job_pods, wait_for
from tests.kubesim.pods import DISTROLESS, FLAKY, NOT_FOUND, PRIVATE, RATE_LIMITED
from tests.kubesim.pods import create as _create
from tests.kubesim.pods import events as _events
from tests.kubesim.pods import waiting as _waiting

pytestmark = pytest.mark.integration


def test_not_found_image_reaches_image_pull_backoff(
    sim: SimHandle, batch: client.BatchV1Api
) -> None:
    _create(batch, job_body("nf", [{"name": "c", "image": NOT_FOUND}], node="compute-1"))
    pod = wait_for(
        lambda: (
            (p := job_pods(sim, "nf"))
            and _waiting(p[0]).get("reason") == "ImagePullBackOff"
            and p[0]
        )
    )
    msg = _waiting(pod)["message"]
    assert msg.startswith(f'Back-off pulling image "{NOT_FOUND}"')
    assert pod["status"]["phase"] == "Pending"
    events = _events(sim, pod)
    failed = [m for t, r, m in events if r == "Failed" and m.startswith("Failed to pull")]
    assert failed[0] == (
        f'Failed to pull image "{NOT_FOUND}": rpc error: code = NotFound desc = failed to pull '
        f'and unpack image "{NOT_FOUND}": failed to resolve reference "{NOT_FOUND}": '
        f"{NOT_FOUND}: not found"
    )
    reasons = [r for _, r, _ in events]
    assert reasons.index("Pulling") < reasons.index("Failed") < reasons.index("BackOff")
    assert ("Warning", "Failed", "Error: ErrImagePull") in events
    assert ("Normal", "BackOff", f'Back-off pulling image "{NOT_FOUND}"') in events
    # Back-off retries: Pulling is recorded again and its count grows (10 s, 20 s, ... time-scaled).
    wait_for(
        lambda: (
            sum(
                e["count"]
                for e in sim.objects("events", "default")
                if e["involvedObject"]["uid"] == pod["metadata"]["uid"] and e["reason"] == "Pulling"
            )
            >= 2
        ),
        what="a second pull attempt",
    )
    assert job_done(sim, "nf") is None  # backoffLimit never fires on a Pending pod


def test_err_image_pull_comes_first(batch: client.BatchV1Api) -> None:
    with start_sim(time_scale=2, nodes=5) as slow:
        b = client.BatchV1Api(
            __import__("kubernetes").config.new_client_from_config(
                config_file=str(slow.kubeconfig_path)
            )
        )
        b.create_namespaced_job("default", job_body("e1", [{"name": "c", "image": NOT_FOUND}]))
        pod = wait_for(
            lambda: (
                (p := job_pods(slow, "e1"))
                and _waiting(p[0]).get("reason") == "ErrImagePull"
                and p[0]
            )
        )
        assert "code = NotFound" in _waiting(pod)["message"]


def test_private_image_needs_its_secret(sim: SimHandle, batch: client.BatchV1Api) -> None:
    _create(batch, job_body("priv-no", [{"name": "c", "image": PRIVATE}], node="compute-2"))
    _create(
        batch,
        job_body(
            "priv-yes",
            [{"name": "c", "image": PRIVATE}],
            node="compute-3",
            pod={"imagePullSecrets": [{"name": "regcred"}]},
        ),
    )
    _create(
        batch,
        job_body(
            "priv-wrong",
            [{"name": "c", "image": PRIVATE}],
            node="compute-4",
            pod={"imagePullSecrets": [{"name": "other"}]},
        ),
    )
    assert wait_for(lambda: job_done(sim, "priv-yes"))["status"]["succeeded"] == 1
    for job in ("priv-no", "priv-wrong"):
        pod = wait_for(
            lambda j=job: (
                (p := job_pods(sim, j))
                and _waiting(p[0]).get("reason") == "ImagePullBackOff"
                and p[0]
            )
        )
        assert "401 Unauthorized" in _waiting(pod)["message"]
        assert (
            "pull access denied, repository does not exist or may require authorization"
            in _waiting(pod)["message"]
        )
    wrong = job_pods(sim, "priv-wrong")[0]
    assert any(r == "FailedToRetrieveImagePullSecret" for _, r, _ in _events(sim, wrong))


def test_rate_limited_image(sim: SimHandle, batch: client.BatchV1Api) -> None:
    _create(batch, job_body("rl", [{"name": "c", "image": RATE_LIMITED}]))
    pod = wait_for(
        lambda: (
            (p := job_pods(sim, "rl"))
            and _waiting(p[0]).get("reason") == "ImagePullBackOff"
            and p[0]
        )
    )
    assert (
        "429 Too Many Requests - Server message: toomanyrequests: "
        "You have reached your pull rate limit." in _waiting(pod)["message"]
    )


def test_flaky_image_fails_first_pulls_then_succeeds(
    sim: SimHandle, batch: client.BatchV1Api
) -> None:
    _create(batch, job_body("fl", [{"name": "c", "image": FLAKY}], node="compute-5"))
    done = wait_for(lambda: job_done(sim, "fl"), timeout=20)
    assert done["status"]["succeeded"] == 1
    assert sim.stats()["pullFailures"]["compute-5"][FLAKY] == 2
    assert sim.pull_counts()[("compute-5", FLAKY)] == 1


def test_serialized_pulls_and_failure_does_not_stop_others(
    sim: SimHandle, batch: client.BatchV1Api
) -> None:
    images = [
        "registry.example.com/a:1",
        NOT_FOUND,
        "registry.example.com/b:1",
        "registry.example.com/c:1",
    ]
    _create(
        batch,
        job_body(
            "ser",
            [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
            node="gpu-1",
            pod={"tolerations": [{"operator": "Exists"}]},
        ),
    )
    pod = wait_for(
        lambda: (
            (p := job_pods(sim, "ser"))
            and sum(
                1 for s in p[0]["status"].get("containerStatuses", []) if "terminated" in s["state"]
            )
            == 3
            and p[0]
        )
    )
    statuses = {s["name"]: s for s in pod["status"]["containerStatuses"]}
    assert statuses["c1"]["state"]["waiting"]["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert all(statuses[c]["state"]["terminated"]["exitCode"] == 0 for c in ("c0", "c2", "c3"))
    assert pod["status"]["phase"] == "Pending"
    assert sim.stats()["maxParallelPullsPerNode"] == 1
    pulled = [m for _, r, m in _events(sim, pod) if r == "Pulled"]
    assert [m.split('"')[1] for m in pulled] == [
        "registry.example.com/a:1",
        "registry.example.com/b:1",
        "registry.example.com/c:1",
    ]


def test_pull_states_walk(sim: SimHandle, batch: client.BatchV1Api) -> None:
    """ContainerCreating while pulling, then terminated exit 0, then Succeeded."""
    with start_sim(time_scale=5, nodes=5) as slow:
        b = client.BatchV1Api(
            __import__("kubernetes").config.new_client_from_config(
                config_file=str(slow.kubeconfig_path)
            )
        )
        b.create_namespaced_job(
            "default", job_body("walk", [{"name": "c", "image": "registry.example.com/big:1"}])
        )
        creating = wait_for(
            lambda: (
                (p := job_pods(slow, "walk"))
                and _waiting(p[0]).get("reason") == "ContainerCreating"
                and p[0]
            )
        )
        assert creating["status"]["phase"] == "Pending"
        done = wait_for(
            lambda: (
                (p := job_pods(slow, "walk")) and p[0]["status"]["phase"] == "Succeeded" and p[0]
            )
        )
        term = done["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed"
        assert done["status"]["containerStatuses"][0]["imageID"].startswith(
            "registry.example.com/big@sha256:"
        )


def test_no_shell_image_fails_sh_but_runs_copied_busybox(
    sim: SimHandle, batch: client.BatchV1Api
) -> None:
    _create(
        batch,
        job_body(
            "nosh",
            [{"name": "c", "image": DISTROLESS, "command": ["sh", "-c", "true"]}],
            node="compute-6",
            backoffLimit=0,
        ),
    )
    failed = wait_for(lambda: job_done(sim, "nosh"))
    assert failed["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    pod = job_pods(sim, "nosh")[0]
    term = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError" and term["exitCode"] == 128
    assert 'exec: "sh": executable file not found in $PATH' in term["message"]
    assert pod["status"]["phase"] == "Failed"

    # The engine's pull pod: an init container copies busybox into an emptyDir; no shell needed.
    body = job_body(
        "pullpod",
        [
            {
                "name": "img-0",
                "image": DISTROLESS,
                "command": ["/ips-bin/busybox", "true"],
                "volumeMounts": [{"name": "bin", "mountPath": "/ips-bin"}],
            }
        ],
        node="compute-7",
        init=[
            {
                "name": "copy",
                "image": "busybox:1.37.0-musl",
                "command": ["cp", "/bin/busybox", "/ips-bin/busybox"],
                "volumeMounts": [{"name": "bin", "mountPath": "/ips-bin"}],
            }
        ],
        backoffLimit=0,
        activeDeadlineSeconds=600,
        ttlSecondsAfterFinished=3600,
        pod={
            "volumes": [{"name": "bin", "emptyDir": {}}],
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "tolerations": [{"operator": "Exists"}],
            "imagePullSecrets": [{"name": "regcred"}],
        },
    )
    _create(batch, body)
    ok = wait_for(lambda: job_done(sim, "pullpod"))
    assert ok["status"]["succeeded"] == 1
    pod = job_pods(sim, "pullpod")[0]
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert ("compute-7", DISTROLESS) in sim.pull_counts()


def test_if_not_present_skips_pull_and_always_pulls(
    sim: SimHandle, batch: client.BatchV1Api
) -> None:
    warm = next(
        n["metadata"]["name"]
        for n in sim.objects("nodes", label_selector="pool=general")
        if any("docker.io/library/redis:7" in i["names"] for i in n["status"]["images"])
        and not n["spec"].get("unschedulable")
    )
    _create(batch, job_body("inp", [{"name": "c", "image": "redis:7"}], node=warm))
    wait_for(lambda: job_done(sim, "inp"))
    assert (warm, "redis:7") not in sim.pull_counts()
    pod = job_pods(sim, "inp")[0]
    assert ("Normal", "Pulled", 'Container image "redis:7" already present on machine') in _events(
        sim, pod
    )
    _create(
        batch,
        job_body(
            "alw", [{"name": "c", "image": "redis:7", "imagePullPolicy": "Always"}], node=warm
        ),
    )
    wait_for(lambda: job_done(sim, "alw"))
    assert sim.pull_counts()[(warm, "redis:7")] == 1


def test_node_status_images_cap_and_order(kubesim_factory: Any) -> None:
    scenario = {
        "nodeGroups": [{"name": "n", "count": 1}],
        "images": [
            {"name": f"registry.example.com/img-{i}:1", "size": (i + 1) * 1000} for i in range(60)
        ],
        "defaults": {"containerRunSeconds": 0},
    }
    sim = kubesim_factory(scenario=scenario, time_scale=1000)
    b = client.BatchV1Api(
        __import__("kubernetes").config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    )
    for start in range(0, 60, 20):
        cs = [
            {"name": f"c{i}", "image": f"registry.example.com/img-{i}:1"}
            for i in range(start, start + 20)
        ]
        b.create_namespaced_job("default", job_body(f"cap-{start}", cs))
    for start in range(0, 60, 20):
        wait_for(lambda s=start: job_done(sim, f"cap-{s}"), timeout=30)
    # The kubelet reports images with its next node status update (coalesced, not per pull).
    node = wait_for(
        lambda: (
            (n := sim.objects("nodes")[0]) and n["status"]["images"][0]["sizeBytes"] == 60000 and n
        )
    )
    images = node["status"]["images"]
    assert len(images) == 50
    sizes = [i["sizeBytes"] for i in images]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 60000 and sizes[-1] == 11000
    assert images[0]["names"][1] == "registry.example.com/img-59:1"
    assert images[0]["names"][0].startswith("registry.example.com/img-59@sha256:")
    assert len(sim.node_images("n-1")) == 60  # absence from the status proves nothing


def test_no_shell_with_on_failure_restarts(
    sim: SimHandle, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    body = job_body("onf", [{"name": "c", "image": DISTROLESS, "command": ["bash", "-c", "true"]}],
                    pod={"restartPolicy": "OnFailure"}, activeDeadlineSeconds=200)  # fmt: skip
    # RunContainerError lasts one simulated second (milliseconds here): a poll can miss it, a
    # watch sees every state the kubelet publishes, as a real client would.
    stream = watch.Watch().stream(
        core.list_namespaced_pod, "default", label_selector="job-name=onf", timeout_seconds=10
    )
    _create(batch, body)
    want = {"RunContainerError", "CrashLoopBackOff", "last:StartError"}
    reasons: set[str] = set()
    for event in stream:
        for cs in event["object"].status.container_statuses or []:
            if cs.state.waiting:
                reasons.add(cs.state.waiting.reason)
            if cs.last_state.terminated and cs.last_state.terminated.reason == "StartError":
                reasons.add("last:StartError")
        if want <= reasons:
            break
    assert want <= reasons, f"RunContainerError then CrashLoopBackOff: saw only {reasons}"
    failed = wait_for(lambda: job_done(sim, "onf"), timeout=15)
    assert failed["status"]["conditions"][-1]["reason"] == "DeadlineExceeded"


def test_node_going_not_ready_mid_pull_finishes_nothing(kubesim_factory: Any) -> None:
    scenario = {"nodeGroups": [{"name": "n", "count": 1}],
                "images": [{"name": "slow:1", "pullSeconds": 200}]}  # fmt: skip
    sim = kubesim_factory(scenario=scenario, time_scale=100)
    b = client.BatchV1Api(
        __import__("kubernetes").config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    )
    b.create_namespaced_job("default", job_body("mid", [{"name": "c", "image": "slow:1"}]))
    wait_for(lambda: any(e["reason"] == "Pulling" for e in sim.objects("events", "default")))
    sim.set_node_ready("n-1", False)
    # Deliberate: nothing must happen for longer than the whole pull (2 s at this scale).
    time.sleep(2.5)
    assert sim.pull_counts() == {} and job_done(sim, "mid") is None
    pod = job_pods(sim, "mid")[0]
    assert _waiting(pod).get("reason") == "ContainerCreating"
    sim.set_node_ready("n-1", True)
    assert wait_for(lambda: job_done(sim, "mid"), timeout=10)["status"]["succeeded"] == 1
    assert sim.pull_counts() == {("n-1", "slow:1"): 1}
