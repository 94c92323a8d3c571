"""Native sidecars (init containers with `restartPolicy: Always`): started in order and not waited
for, restarted when they exit, stopped once a Job's app containers ended, out of the Pod's phase.
The pure planner, then a real Pod on a real kubelet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubeletenv import KubeletEnv

from localcluster.node.podplans import KillContainers, Observed, PodFacts, StartContainer, plan_pod
from localcluster.node.podstatus import StatusExtras, pod_status

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _pod(policy: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "status": {"startTime": "2026-01-01T00:00:00Z"},
            "spec": {"restartPolicy": policy, "containers": [{"name": "main", "image": "busybox"}],
                     "initContainers": [{"name": "side", "image": "busybox", "restartPolicy": "Always"},
                                        {"name": "setup", "image": "busybox"}]}}


def _at(seconds: float) -> PodFacts:
    return PodFacts(now=T0 + timedelta(seconds=seconds))


def _run(name: str, attempt: int = 0) -> Observed:
    return Observed(name, attempt, f"{name}-{attempt}", True, None, T0)


def _exit(name: str, code: int, attempt: int = 0) -> Observed:
    return Observed(name, attempt, f"{name}-{attempt}", False, code, T0, T0 + timedelta(seconds=1))


def test_sidecar_is_started_first_then_not_waited_for() -> None:
    p = _pod("Never")
    assert plan_pod(p, [], _at(0)).actions == (StartContainer("side", 0, True),)
    assert plan_pod(p, [_run("side")], _at(1)).actions == (StartContainer("setup", 0, True),)
    plan = plan_pod(p, [_run("side"), _exit("setup", 0)], _at(2))
    assert (plan.actions, plan.phase) == ((StartContainer("main", 0, False),), "Pending")
    running = plan_pod(p, [_run("side"), _exit("setup", 0), _run("main")], _at(3))
    assert running.phase == "Running"
    status = pod_status(p, running, StatusExtras(now=T0 + timedelta(seconds=3)))
    assert {c["type"]: c["status"] for c in status["conditions"]}["Initialized"] == "True"


def test_sidecar_restarts_when_it_exits_and_is_stopped_after_the_job_ends() -> None:
    p = _pod("Never")
    plan = plan_pod(p, [_exit("side", 1), _exit("setup", 0), _run("main")], _at(60))
    assert StartContainer("side", 1, True) in plan.actions and plan.phase == "Running"
    done = plan_pod(p, [_run("side", 1), _exit("setup", 0), _exit("main", 0)], _at(61))
    assert done.actions == (KillContainers(("side-1",), False, "Killing"),)
    assert done.phase == "Succeeded"
    after = plan_pod(p, [_exit("side", 143, 1), _exit("setup", 0), _exit("main", 0)], _at(90))
    assert (after.actions, after.phase) == ((), "Succeeded")


def test_a_job_pod_with_a_sidecar_completes(kubelet: KubeletEnv) -> None:
    kubelet.pod("withside", "", initContainers=[
        {"name": "side", "image": "busybox", "restartPolicy": "Always",
         "command": ["sh", "-c", "echo side up; while true; do sleep 0.2; done"]}],
        containers=[{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo main done"]}])
    pod = kubelet.wait_phase("withside", "Succeeded", timeout=60)
    assert kubelet.log(pod) == "main done\n"
    assert kubelet.log(pod, "side") == "side up\n"
