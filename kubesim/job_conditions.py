"""The Job controller's terminal conditions: the interim condition first, the final one once no
pod is terminating.

Follows kubernetes/kubernetes `pkg/controller/job/job_controller.go`: `syncJob` adds
`SuccessCriteriaMet` or `FailureTarget` (with the reason, e.g. `DeadlineExceeded`) as soon as the
outcome is known and deletes the remaining active pods (`deleteActivePods`); `Complete` or
`Failed` follows only when `status.terminating` is 0 (`delayTerminalCondition`, on by default
since 1.31 with JobPodReplacementPolicy/JobManagedBy; `enactJobFinished`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubesim import jobs
from kubesim.store import now_iso

if TYPE_CHECKING:
    from kubesim.cluster import Cluster
    from kubesim.state import JobState


def condition(type_: str, reason: str, message: str) -> dict[str, Any]:
    ts = now_iso()
    return {
        "type": type_,
        "status": "True",
        "lastProbeTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def finish(
    cluster: Cluster, js: JobState, job: dict[str, Any], ok: bool, reason: str, message: str
) -> None:
    """SuccessCriteriaMet/FailureTarget now; Complete/Failed once no pod is terminating
    (job_controller.go syncJob: the terminal condition waits for `status.terminating` 0)."""
    js.finished = True
    for t in js.timers:
        t.cancel()
    st = job["status"]
    st["conditions"] = [condition("SuccessCriteriaMet" if ok else "FailureTarget", reason, message)]
    js.final = (ok, reason, message)
    doomed = sorted(js.active)
    js.terminating.update(doomed)
    js.active.clear()
    jobs.job_status(cluster, js, job)
    for key in doomed:
        js.failed += 1
        cluster.delete_pod(*key)
        cluster.record_event(
            job,
            "Normal",
            "SuccessfulDelete",
            f"Deleted pod: {key[1]}",
            component="job-controller",
        )
    if jobs.job_obj(cluster, js) is not None:
        jobs.job_status(cluster, js, job)
    final(cluster, js)


def final(cluster: Cluster, js: JobState) -> None:
    job = jobs.job_obj(cluster, js)
    if js.final is None or js.terminating or job is None:
        return
    ok, reason, message = js.final
    js.final = None
    st = job["status"]
    st.setdefault("conditions", []).append(
        condition("Complete" if ok else "Failed", reason, message)
    )
    if ok:
        st["completionTime"] = now_iso()
        cluster.record_event(
            job, "Normal", "Completed", "Job completed", component="job-controller"
        )
    else:
        cluster.record_event(job, "Warning", reason, message, component="job-controller")
    jobs.job_status(cluster, js, job)
    ttl = job["spec"].get("ttlSecondsAfterFinished")
    if ttl is not None:
        cluster.later(float(ttl), jobs.job_ttl, cluster, js.uid)
