"""The cells kube-apiserver's printers compute for Pods, Jobs and Nodes (pure functions, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apiserver import printers as p
from apiserver import workloadprinters as w


def ago(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(**status: object) -> dict[str, object]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}], "initContainers": []},
            "status": {"phase": "Pending", **status}}


def test_pod_status_reasons() -> None:
    assert w.pod_status(pod()) == "Pending"
    waiting = {"name": "c", "state": {"waiting": {"reason": "ErrImagePull"}}}
    assert w.pod_status(pod(containerStatuses=[waiting])) == "ErrImagePull"
    done = {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    assert w.pod_status(pod(phase="Succeeded", containerStatuses=[done])) == "Completed"
    failed = {"name": "c", "state": {"terminated": {"exitCode": 3}}}
    assert w.pod_status(pod(phase="Failed", containerStatuses=[failed])) == "ExitCode:3"
    init = pod(initContainerStatuses=[{"name": "i", "state": {"running": {}}}])
    init["spec"]["initContainers"] = [{"name": "i"}]  # type: ignore[index]
    assert w.pod_status(init) == "Init:0/1"
    running = pod(phase="Running", containerStatuses=[{"name": "c", "ready": True, "state": {"running": {}}}])
    assert w.pod_status(running) == "Running" and w.pod_ready(running) == "1/1"
    running["metadata"]["deletionTimestamp"] = ago(0)  # type: ignore[index]
    assert w.pod_status(running) == "Terminating"


def test_pod_restarts_with_the_last_restart_age() -> None:
    status = {"name": "c", "restartCount": 2, "lastState": {"terminated": {"finishedAt": ago(300)}}}
    assert w.pod_restarts(pod(containerStatuses=[status])) == "2 (5m ago)"
    assert w.pod_restarts(pod(containerStatuses=[{"name": "c", "restartCount": 0}])) == "0"


def test_job_cells() -> None:
    job = {"spec": {"completions": 3}, "status": {"succeeded": 1, "startTime": ago(90)}}
    assert (w._job_status(job), w._job_completions(job), w._job_duration(job)) == ("Running", "1/3", "90s")
    job["status"] |= {"completionTime": ago(30), "conditions": [{"type": "Complete", "status": "True"}]}
    assert (w._job_status(job), w._job_duration(job)) == ("Complete", "60s")
    assert w._job_completions({"spec": {"parallelism": 4}, "status": {}}) == "0/1 of 4"


def test_node_status_and_roles() -> None:
    node = {"metadata": {"labels": {"node-role.kubernetes.io/worker": ""}},
            "spec": {"unschedulable": True}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert (p._node_status(node), p._node_roles(node)) == ("Ready,SchedulingDisabled", "worker")
    assert p._node_status({"status": {}}) == "Unknown" and p._node_roles({}) == "<none>"
