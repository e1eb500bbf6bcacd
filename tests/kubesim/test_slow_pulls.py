"""The slow-pulls scenario (issue 11): log-normal 90 s pulls, a node deleted mid-pull, a node
flapping NotReady for 20 s, a pool without PriorityClasses, a registry deny rule. Meant for time
scale 1; here it runs 100x faster, which changes no behaviour."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from kubesim.scenario import Image, load_scenario
from kubesim.testing import start_sim
from tests.kubesim.conftest import job_body, job_done, wait_for

pytestmark = pytest.mark.integration
LONG = "registry.example.com/long:1"
MID = "registry.example.com/mid:1"


def test_slow_pulls_scenario() -> None:
    sc = load_scenario("slow-pulls")
    assert sc.defaults.pull_seconds is not None and sc.defaults.pull_seconds.median == 90
    # Images certain to be mid-pull when the timeline strikes, whatever the log-normal draws;
    # the timeline moves 300 s later so that the Jobs surely exist by then.
    sc.images.append(Image(name=LONG, pull_seconds=100000))
    sc.images.append(Image(name=MID, pull_seconds=400))
    for step in sc.timeline:
        step.at += 300
    with start_sim(nodes=None, scenario=sc, time_scale=100) as sim:
        api = config.new_client_from_config(config_file=str(sim.kubeconfig_path))
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        img = "registry.example.com/app:1"
        batch.create_namespaced_job(
            "default", job_body("compute-5", [{"name": "c", "image": LONG}], node="compute-5")
        )
        batch.create_namespaced_job(
            "default", job_body("compute-3", [{"name": "c", "image": MID}], node="compute-3")
        )
        batch.create_namespaced_job(
            "default", job_body("compute-1", [{"name": "c", "image": img}], node="compute-1")
        )
        batch.create_namespaced_job(
            "default",
            job_body(
                "gpu", [{"name": "c", "image": img}], node="gpu-1", pod={"priorityClassName": "p"}
            ),
        )
        batch.create_namespaced_job(
            "default",
            job_body("blocked", [{"name": "c", "image": "registry.example.com/blocked/tool:1"}]),
        )
        # compute-5 is deleted at t=45 s, mid-pull: its pod fails by pod GC 40 s later.
        failed = wait_for(
            lambda: batch.read_namespaced_job("compute-5", "default").status.failed,
            timeout=30,
            what="pod GC on compute-5",
        )
        assert failed == 1
        assert "compute-5" not in {n.metadata.name for n in core.list_node().items}
        # compute-3 flaps NotReady (t=60..80 s): its pull restarts; every pod still succeeds.
        events = wait_for(
            lambda: (
                [e for e in sim.objects("events", "default") if e["reason"] == "FailedCreate"]
                if len(
                    [e for e in sim.objects("events", "default") if e["reason"] == "FailedCreate"]
                )
                >= 2
                else None
            ),
            what="both refusals",
        )
        messages = sorted(e["message"] for e in events)
        assert messages[0].startswith('Error creating: admission webhook "registry-allowlist')
        assert messages[1] == (
            'Error creating: pods "gpu-" is forbidden: no PriorityClass with name p was found'
        )
        for node in ("compute-3", "compute-1"):
            wait_for(lambda n=node: job_done(sim, n), timeout=60, what=f"{node} done")
        # The flap cut compute-3's pull: its kubelet started it over once Ready again.
        pulling = [
            e
            for e in sim.objects("events", "default")
            if e["reason"] == "Pulling" and e["involvedObject"]["name"].startswith("compute-3-")
        ]
        assert pulling and pulling[0]["count"] == 2
        ready = next(c for c in core.read_node("compute-3").status.conditions if c.type == "Ready")
        assert ready.status == "True"


def test_built_in_scenarios_by_name_as_the_cli_passes_them() -> None:
    from pathlib import Path

    assert load_scenario(Path("slow-pulls")).timeline
    assert load_scenario(Path("default")).node_groups[0].name == "compute"
    with pytest.raises(FileNotFoundError):
        load_scenario(Path("no-such-scenario"))
