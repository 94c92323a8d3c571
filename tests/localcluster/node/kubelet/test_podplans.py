"""The pure planner and status: restart policies, back-off, init containers, phase and conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from localcluster.node.envvars import command_line, expand
from localcluster.node.podplans import (
    Finish,
    KillContainers,
    Observed,
    PodFacts,
    StartContainer,
    backoff_delay,
    plan_pod,
)
from localcluster.node.podstatus import StatusExtras, pod_status, qos_class

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def pod(policy: str = "Always", inits: int = 0, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta},
        "spec": {"restartPolicy": policy, "containers": [{"name": "main", "image": "busybox"}],
                 "initContainers": [{"name": f"init{i}", "image": "busybox"} for i in range(inits)]},
        "status": {"startTime": "2026-01-01T00:00:00Z"},
    }


def exited(name: str, attempt: int, code: int, start: float, end: float) -> Observed:
    return Observed(name, attempt, f"{name}-{attempt}", False, code, T0 + timedelta(seconds=start),
                    T0 + timedelta(seconds=end))


def running(name: str, attempt: int, start: float = 0) -> Observed:
    return Observed(name, attempt, f"{name}-{attempt}", True, None, T0 + timedelta(seconds=start))


def at(seconds: float, **kw: Any) -> PodFacts:
    return PodFacts(now=T0 + timedelta(seconds=seconds), **kw)


def test_a_new_pod_starts_its_container_and_is_pending() -> None:
    plan = plan_pod(pod(), [], at(0))
    assert plan.actions == (StartContainer("main", 0, False),)
    assert plan.phase == "Pending"


def test_never_with_exit_zero_succeeds_and_exit_three_fails() -> None:
    ok = plan_pod(pod("Never"), [exited("main", 0, 0, 0, 1)], at(2))
    assert (ok.actions, ok.phase) == ((), "Succeeded")
    bad = plan_pod(pod("Never"), [exited("main", 0, 3, 0, 1)], at(2))
    assert (bad.actions, bad.phase) == ((), "Failed")
    status = pod_status(pod("Never"), bad, StatusExtras(now=T0))
    term = status["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    ok_status = pod_status(pod("Never"), ok, StatusExtras(now=T0))
    assert ok_status["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    ready = {c["type"]: c for c in ok_status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")


def test_on_failure_restarts_only_failures() -> None:
    assert plan_pod(pod("OnFailure"), [exited("main", 0, 0, 0, 1)], at(30)).phase == "Succeeded"
    plan = plan_pod(pod("OnFailure"), [exited("main", 0, 1, 0, 1)], at(30))
    assert plan.actions == (StartContainer("main", 1, False),)
    assert plan.phase == "Running"


def test_always_backs_off_ten_seconds_doubling_to_five_minutes() -> None:
    history = [exited("main", 0, 0, 0, 1)]
    waiting = plan_pod(pod(), history, at(5))
    assert waiting.actions == ()
    assert waiting.requeue_after is not None and 5.9 <= waiting.requeue_after <= 6.1
    status = pod_status(pod(), waiting, StatusExtras(now=T0 + timedelta(seconds=5)))
    cs = status["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 0
    assert plan_pod(pod(), history, at(11)).actions == (StartContainer("main", 1, False),)
    crashes = [exited("main", i, 1, i * 10, i * 10 + 1) for i in range(8)]
    assert [backoff_delay(crashes[: n + 1]) for n in range(8)] == [10, 20, 40, 80, 160, 300, 300, 300]


def test_a_ten_minute_run_resets_the_back_off() -> None:
    history = [exited("main", 0, 1, 0, 1), exited("main", 1, 1, 20, 21), exited("main", 2, 1, 60, 700)]
    assert backoff_delay(history) == 10
    assert plan_pod(pod(), history, at(700)).containers[0].restart_count == 2


def test_init_containers_run_in_order_before_the_app() -> None:
    p = pod("Always", inits=2)
    assert plan_pod(p, [], at(0)).actions == (StartContainer("init0", 0, True),)
    assert plan_pod(p, [running("init0", 0)], at(1)).actions == ()
    plan = plan_pod(p, [exited("init0", 0, 0, 0, 1)], at(2))
    assert plan.actions == (StartContainer("init1", 0, True),)
    status = pod_status(p, plan, StatusExtras(now=T0))
    init = {c["type"]: c for c in status["conditions"]}["Initialized"]
    assert (init["status"], init["reason"]) == ("False", "ContainersNotInitialized")
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    done = [exited("init0", 0, 0, 0, 1), exited("init1", 0, 0, 1, 2)]
    assert plan_pod(p, done, at(3)).actions == (StartContainer("main", 0, False),)


def test_a_failed_init_container_fails_a_never_pod_and_retries_otherwise() -> None:
    history = [exited("init0", 0, 2, 0, 1)]
    assert plan_pod(pod("Never", inits=1), history, at(2)).phase == "Failed"
    plan = plan_pod(pod("OnFailure", inits=1), history, at(12))
    assert (plan.actions, plan.phase) == ((StartContainer("init0", 1, True),), "Pending")


def test_running_ready_conditions_and_transition_times_kept() -> None:
    p = pod()
    plan = plan_pod(p, [running("main", 0)], at(1))
    assert (plan.actions, plan.phase) == ((), "Running")
    extras = StatusExtras(now=T0 + timedelta(seconds=1), pod_ip="10.1.0.5", host_ip="10.1.127.254",
                          ready=frozenset({"main-0"}), started=frozenset({"main-0"}))
    status = pod_status(p, plan, extras)
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert conds == {"PodScheduled": "True", "PodReadyToStartContainers": "True", "Initialized": "True",
                     "ContainersReady": "True", "Ready": "True"}
    assert status["podIPs"] == [{"ip": "10.1.0.5"}] and status["hostIP"] == "10.1.127.254"
    cs = status["containerStatuses"][0]
    assert (cs["ready"], cs["started"], cs["containerID"]) == (True, True, "local://main-0")
    later = pod_status({**p, "status": status}, plan,
                       StatusExtras(now=T0 + timedelta(seconds=99), pod_ip="10.1.0.5", ready=frozenset({"main-0"})))
    assert later["conditions"] == status["conditions"]


def test_deletion_sends_sigterm_then_sigkill_at_the_deadline_then_finishes() -> None:
    p = pod(deletionTimestamp="2026-01-01T00:00:30Z", deletionGracePeriodSeconds=30)
    live = [running("main", 0)]
    assert plan_pod(p, live, at(1)).actions == (KillContainers(("main-0",), False, "Killing"),)
    assert plan_pod(p, live, at(2, term_sent=True)).actions == ()
    assert plan_pod(p, live, at(30, term_sent=True)).actions == (KillContainers(("main-0",), True, "Killing"),)
    assert plan_pod(p, [exited("main", 0, 143, 0, 3)], at(31)).actions == (Finish(),)


def test_active_deadline_fails_the_pod() -> None:
    p = pod()
    p["spec"]["activeDeadlineSeconds"] = 5
    plan = plan_pod(p, [running("main", 0)], at(6))
    assert plan.actions == (KillContainers(("main-0",), True, "DeadlineExceeded"),)
    assert (plan.phase, plan.reason) == ("Failed", "DeadlineExceeded")


def test_liveness_failure_kills_and_image_errors_block() -> None:
    assert plan_pod(pod(), [running("main", 0)], at(1, unhealthy=frozenset({"main-0"}))).actions == (
        KillContainers(("main-0",), False, "Unhealthy"),)
    plan = plan_pod(pod(), [], at(0, image_errors={"main": 'image "nope" cannot be mapped'}))
    assert plan.actions == () and plan.phase == "Pending"
    status = pod_status(pod(), plan, StatusExtras(now=T0, image_errors={"main": "image nope"}))
    assert status["containerStatuses"][0]["state"]["waiting"] == {"reason": "ErrImagePull", "message": "image nope"}


def test_qos_and_expansion_and_entrypoint_rules() -> None:
    assert qos_class(pod()) == "BestEffort"
    g = pod()
    g["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert qos_class(g) == "Guaranteed"
    g["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
    assert qos_class(g) == "Burstable"
    assert expand("$(A)-$$(A)-$(B)", {"A": "x"}) == "x-$(A)-$(B)"
    assert command_line({"args": ["-c", "echo $(A)"]}, ["sh"], [], {"A": "1"}) == ["sh", "-c", "echo 1"]
    assert command_line({"command": ["echo"]}, ["sh"], ["-x"], {}) == ["echo"]
    assert command_line({}, ["sh"], ["-x"], {}) == ["sh", "-x"]
