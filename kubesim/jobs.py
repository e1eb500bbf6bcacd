"""The Job controller: creates a Job's pods (rate-limited, with the pod back-off), counts
succeeded and failed pods, and applies backoffLimit, activeDeadlineSeconds and the TTL.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from kubesim import (
    admission,
    events,
    gc,
    job_conditions,
    scheduler,
)
from kubesim.state import (
    JobState,
    generated_suffix,
)
from kubesim.store import Entry, now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster

# A failed pod holds back the next one: 10 s doubling, capped at six minutes, as the Job docs
# describe ("Pod backoff failure policy"; pkg/controller/job's pod failure back-off).
JOB_BACKOFF_INITIAL = 10.0
JOB_BACKOFF_MAX = 360.0
# After a refused pod create the Job is requeued through its work queue's rate limiter:
# pkg/controller/job/job_controller.go `DefaultJobApiBackOff` (1 s) and `MaxJobApiBackOff` (1 min).
CREATE_BACKOFF_INITIAL = 1.0
CREATE_BACKOFF_MAX = 60.0


def job_created(cluster: Cluster, entry: Entry) -> None:
    job = entry.obj
    md = job["metadata"]
    js = JobState((md["namespace"], md["name"]), md["uid"])
    cluster.jobs[js.uid] = js
    ts = now_iso()
    job["status"] = {
        "startTime": ts,
        "active": 0,
        "ready": 0,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }
    ads = job["spec"].get("activeDeadlineSeconds")
    if ads:
        js.timers.append(cluster.later(float(ads), job_deadline, cluster, js.uid))
    if job["spec"].get("suspend"):
        job["status"] = {"active": 0, "ready": 0, "terminating": 0}
        cluster.store.update("Job", job)
    job_sync(cluster, js)  # stores the status with the first pod counted


def job_obj(cluster: Cluster, js: JobState) -> dict[str, Any] | None:
    e = cluster.store.get("Job", *js.key)
    return e.obj if e and e.obj["metadata"]["uid"] == js.uid else None


def job_sync(cluster: Cluster, js: JobState) -> None:
    job = job_obj(cluster, js)
    if job is None or js.finished or job["metadata"].get("deletionTimestamp"):
        return
    spec = job["spec"]
    if spec.get("suspend"):
        return
    if js.failed > spec["backoffLimit"]:
        job_finish(
            cluster,
            js,
            job,
            False,
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        )
        return
    if js.succeeded >= spec["completions"]:
        job_finish(
            cluster,
            js,
            job,
            True,
            "CompletionsReached",
            "Reached expected number of succeeded pods",
        )
        return
    want = min(spec["parallelism"], spec["completions"] - js.succeeded) - len(js.active)
    if want > 0 and not js.token_ready:
        # The controller's client waits for its rate limiter: 2 requests per new pod.
        delay = cluster.pace.reserve(cluster.now(), 2 * want)
        if delay > 0:
            js.token_ready = True
            if not js.sync_pending:
                js.sync_pending = True
                js.timers.append(cluster.later(delay, job_resync, cluster, js.uid))
            job_status(cluster, js, job)
            return
    if want > 0:
        wait = js.next_pod_at - cluster.now()
        if wait > 0:
            if not js.sync_pending:
                js.sync_pending = True
                js.timers.append(cluster.later(wait, job_resync, cluster, js.uid))
        else:
            js.token_ready = False
            for _ in range(want):  # slow start: stop at the first refused create
                if not create_job_pod(cluster, js, job):
                    break
    if job_obj(cluster, js) is not None:
        job_status(cluster, js, job)


def job_spec_changed(cluster: Cluster, uid: str) -> None:
    """After an API write to a Job (e.g. `suspend` flipped back to false)."""
    js = cluster.jobs.get(uid)
    if js is not None:
        job_sync(cluster, js)


def job_resync(cluster: Cluster, uid: str) -> None:
    js = cluster.jobs.get(uid)
    if js is not None:
        js.sync_pending = False
        job_sync(cluster, js)


def job_status(cluster: Cluster, js: JobState, job: dict[str, Any]) -> None:
    st = job["status"]
    st["active"] = len(js.active)
    if not st["active"]:
        st.pop("active")
    ready = 0
    for key in js.active:
        e = cluster.store.get("Pod", *key)
        if e and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in e.obj["status"].get("conditions", [])
        ):
            ready += 1
    st["ready"] = ready
    st["terminating"] = len(js.terminating)
    if js.succeeded:
        st["succeeded"] = js.succeeded
    if js.failed:
        st["failed"] = js.failed
    cluster.store.update("Job", job)


def create_job_pod(cluster: Cluster, js: JobState, job: dict[str, Any]) -> bool:
    from kubesim.validation import add_default_tolerations

    md = job["metadata"]
    tmpl = job["spec"]["template"]
    name = f"{md['name']}-{generated_suffix(cluster.rng)}"
    while cluster.store.get("Pod", md["namespace"], name) is not None:
        name = f"{md['name']}-{generated_suffix(cluster.rng)}"
    labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
    labels.update(
        {
            "batch.kubernetes.io/controller-uid": js.uid,
            "batch.kubernetes.io/job-name": md["name"],
            "controller-uid": js.uid,
            "job-name": md["name"],
        }
    )
    spec = copy.deepcopy(tmpl["spec"])
    add_default_tolerations(spec, cluster.scenario.control_plane.default_toleration_seconds)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": f"{md['name']}-",
            "namespace": md["namespace"],
            "labels": labels,
            "annotations": dict((tmpl.get("metadata") or {}).get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": md["name"],
                    "uid": js.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    try:
        admission.admit(cluster, pod, f"{md['name']}-")
    except admission.Denied as d:
        # RealPodControl.createPods records the event; the sync is requeued, rate limited.
        events.record_event(
            cluster,
            job,
            "Warning",
            "FailedCreate",
            f"Error creating: {d}",
            component="job-controller",
        )
        js.create_backoff = min(
            max(CREATE_BACKOFF_INITIAL, js.create_backoff * 2), CREATE_BACKOFF_MAX
        )
        if not js.sync_pending:
            js.sync_pending = True
            js.timers.append(cluster.later(js.create_backoff, job_resync, cluster, js.uid))
        return False
    js.create_backoff = 0.0
    entry = cluster.store.create("Pod", pod)
    js.active.add((md["namespace"], name))
    events.record_event(
        cluster,
        job,
        "Normal",
        "SuccessfulCreate",
        f"Created pod: {name}",
        component="job-controller",
    )
    scheduler.pod_created(cluster, entry)
    return True


def job_finish(
    cluster: Cluster, js: JobState, job: dict[str, Any], ok: bool, reason: str, message: str
) -> None:
    job_conditions.finish(cluster, js, job, ok, reason, message)


def job_final(cluster: Cluster, js: JobState) -> None:
    job_conditions.final(cluster, js)


def job_ttl(cluster: Cluster, uid: str) -> None:
    js = cluster.jobs.get(uid)
    if js is not None and job_obj(cluster, js) is not None:
        gc.delete_job(cluster, *js.key, policy="Background")


def job_deadline(cluster: Cluster, uid: str) -> None:
    js = cluster.jobs.get(uid)
    job = job_obj(cluster, js) if js else None
    if js is None or job is None or js.finished:
        return
    job_finish(
        cluster, js, job, False, "DeadlineExceeded", "Job was active longer than specified deadline"
    )


def on_pod_event(cluster: Cluster, type_: str, entry: Entry, prev: Entry | None) -> None:
    """The Job controller's pod informer: count terminal pods, replace failed ones."""
    pod = entry.obj
    owner = next(
        (o for o in pod["metadata"].get("ownerReferences", []) if o.get("kind") == "Job"), None
    )
    if owner is None:
        return
    js = cluster.jobs.get(owner["uid"])
    if js is None:
        return
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    phase = pod.get("status", {}).get("phase")
    if key in js.terminating and (type_ == "DELETED" or phase in ("Succeeded", "Failed")):
        js.terminating.discard(key)
        job = job_obj(cluster, js)
        if job is not None:
            job_status(cluster, js, job)
        job_final(cluster, js)
        return
    if key not in js.active:
        return
    if phase == "Succeeded":
        js.active.discard(key)
        js.succeeded += 1
    elif phase == "Failed" or type_ == "DELETED":
        js.active.discard(key)
        js.failed += 1
        js.next_pod_at = cluster.now() + min(
            JOB_BACKOFF_INITIAL * 2 ** (js.failed - 1), JOB_BACKOFF_MAX
        )
    else:
        if type_ == "MODIFIED" and prev is not None:
            job = job_obj(cluster, js)
            if job is not None and not js.finished:
                was = _is_ready(prev.raw)
                now = any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in pod["status"].get("conditions", [])
                )
                if was != now:
                    job_status(cluster, js, job)
        return
    assert cluster.loop is not None
    cluster.loop.call_soon(job_sync, cluster, js)


def _is_ready(raw: bytes) -> bool:
    return b'"type":"Ready","status":"True"' in raw
