"""The Job controller against a real API server, with a fake kubelet and a fake clock."""

from __future__ import annotations

from typing import Any

from fake_kubelet import FakeKubelet
from support.waiting import eventually

from kube.clock import FakeClock
from kube.controller import Runtime
from kube.rest import EVENTS, JOBS, PODS, Kube, Obj
from localcluster import controllers


def job(name: str, **spec: Any) -> Obj:
    template = {"spec": {"restartPolicy": "Never",
                         "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}
    return {"metadata": {"name": name}, "spec": {"template": template, **spec}}


def status(kube: Kube, ns: str, name: str) -> Obj:
    found = kube.get(JOBS, name, ns)
    assert found is not None
    return dict(found.get("status") or {})


def cond(st: Obj, type_: str) -> Obj | None:
    return next((c for c in st.get("conditions") or [] if c["type"] == type_ and c["status"] == "True"), None)


def job_pods(kubelet: FakeKubelet, name: str, n: int) -> list[Obj]:
    found = eventually(lambda: (lambda p: (p,) if len(p) == n else None)(kubelet.pods(**{"job-name": name})),
                       what=f"{n} pods of job {name}")
    return found[0]


def test_pods_carry_labels_owner_and_complete_the_job(kube: Kube, namespace: str, runtime: Runtime,
                                                      kubelet: FakeKubelet) -> None:
    created = kube.create(JOBS, job("two", completions=2), namespace)
    uid = created["metadata"]["uid"]
    [first] = job_pods(kubelet, "two", 1)
    meta = first["metadata"]
    assert meta["generateName"] == "two-" and meta["name"].startswith("two-")
    assert meta["labels"] == {"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                              "batch.kubernetes.io/job-name": "two", "job-name": "two"}
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "two", "uid": uid,
                                        "controller": True, "blockOwnerDeletion": True}]
    assert eventually(lambda: status(kube, namespace, "two").get("active") == 1)
    assert status(kube, namespace, "two")["startTime"]
    kubelet.run(first)
    eventually(lambda: status(kube, namespace, "two").get("ready") == 1)
    kubelet.finish(first)
    pods = job_pods(kubelet, "two", 2)
    second = next(p for p in pods if p["metadata"]["uid"] != first["metadata"]["uid"])
    kubelet.finish(second)
    st = eventually(lambda: (lambda s: s if cond(s, "Complete") else None)(status(kube, namespace, "two")))
    assert st["succeeded"] == 2 and "active" not in st and "failed" not in st and st["completionTime"]
    complete, met = cond(st, "Complete"), cond(st, "SuccessCriteriaMet")
    assert complete and met and complete["reason"] == "CompletionsReached"
    assert complete["message"] == "Reached expected number of succeeded pods"
    assert len(kubelet.pods(**{"job-name": "two"})) == 2
    events = eventually(lambda: (lambda e: e if {"Completed", "SuccessfulCreate"} <= set(e) else None)(
        {e["reason"]: e for e in kube.list(EVENTS, namespace)[0] if e["involvedObject"].get("name") == "two"}))
    assert events["Completed"]["message"] == "Job completed"
    assert events["SuccessfulCreate"]["message"] == f"Created pod: {first['metadata']['name']}" \
        or events["SuccessfulCreate"]["message"] == f"Created pod: {second['metadata']['name']}"
    assert events["Completed"]["involvedObject"]["kind"] == "Job"


def test_backoff_limit_fails_after_two_pods_with_pod_failure_backoff(kube: Kube, namespace: str, runtime: Runtime,
                                                                    kubelet: FakeKubelet, clock: FakeClock) -> None:
    kube.create(JOBS, job("exit3", backoffLimit=1), namespace)
    [first] = job_pods(kubelet, "exit3", 1)
    kubelet.finish(first, exit_code=3)
    eventually(lambda: status(kube, namespace, "exit3").get("failed") == 1)
    assert len(kubelet.pods(**{"job-name": "exit3"})) == 1, "a replacement waits for the 10 s back-off"
    clock.advance(9)
    assert status(kube, namespace, "exit3").get("active") is None
    clock.advance(1)
    pods = job_pods(kubelet, "exit3", 2)
    second = next(p for p in pods if p["metadata"]["uid"] != first["metadata"]["uid"])
    kubelet.finish(second, exit_code=3)
    st = eventually(lambda: (lambda s: s if cond(s, "Failed") else None)(status(kube, namespace, "exit3")))
    failed = cond(st, "Failed")
    assert failed and failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert cond(st, "FailureTarget") and st["failed"] == 2 and "succeeded" not in st
    clock.advance(3600)
    assert len(kubelet.pods(**{"job-name": "exit3"})) == 2


def test_parallelism_zero_suspend_and_resume(kube: Kube, namespace: str, runtime: Runtime,
                                             kubelet: FakeKubelet) -> None:
    kube.create(JOBS, job("par", parallelism=0, completions=4), namespace)
    eventually(lambda: status(kube, namespace, "par").get("startTime"))
    assert kubelet.pods(**{"job-name": "par"}) == []
    kube.patch(JOBS, "par", {"spec": {"parallelism": 2}}, namespace)
    job_pods(kubelet, "par", 2)
    kube.patch(JOBS, "par", {"spec": {"suspend": True}}, namespace)
    st = eventually(lambda: (lambda s: s if cond(s, "Suspended") else None)(status(kube, namespace, "par")))
    assert cond(st, "Suspended") == {**cond(st, "Suspended"), "reason": "JobSuspended", "message": "Job suspended"}
    job_pods(kubelet, "par", 0)
    kube.patch(JOBS, "par", {"spec": {"suspend": False}}, namespace)
    job_pods(kubelet, "par", 2)
    st = status(kube, namespace, "par")
    resumed = next(c for c in st["conditions"] if c["type"] == "Suspended")
    assert resumed["status"] == "False" and resumed["reason"] == "JobResumed"


def test_active_deadline_deletes_pods_and_fails(kube: Kube, namespace: str, runtime: Runtime,
                                                kubelet: FakeKubelet, clock: FakeClock) -> None:
    kube.create(JOBS, job("slow", activeDeadlineSeconds=30), namespace)
    [pod] = job_pods(kubelet, "slow", 1)
    kubelet.run(pod)
    eventually(lambda: status(kube, namespace, "slow").get("ready") == 1)
    clock.advance(31)
    st = eventually(lambda: (lambda s: s if cond(s, "Failed") else None)(status(kube, namespace, "slow")))
    failed = cond(st, "Failed")
    assert failed and failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "Job was active longer than specified deadline"
    assert kubelet.pods(**{"job-name": "slow"}) == [] and "active" not in st


def test_work_queue_job_completes_when_one_succeeded_and_none_active(kube: Kube, namespace: str, runtime: Runtime,
                                                                      kubelet: FakeKubelet) -> None:
    kube.create(JOBS, job("queue", parallelism=2), namespace)
    a, b = job_pods(kubelet, "queue", 2)
    kubelet.finish(a)
    eventually(lambda: status(kube, namespace, "queue").get("succeeded") == 1)
    assert len(kubelet.pods(**{"job-name": "queue"})) == 2 and not cond(status(kube, namespace, "queue"), "Complete")
    kubelet.finish(b)
    st = eventually(lambda: (lambda s: s if cond(s, "Complete") else None)(status(kube, namespace, "queue")))
    assert st["succeeded"] == 2


def test_ttl_after_finished_deletes_the_job(kube: Kube, namespace: str, runtime: Runtime,
                                            kubelet: FakeKubelet, clock: FakeClock) -> None:
    kube.create(JOBS, job("ttl", ttlSecondsAfterFinished=60), namespace)
    [pod] = job_pods(kubelet, "ttl", 1)
    kubelet.finish(pod)
    eventually(lambda: cond(status(kube, namespace, "ttl"), "Complete"))
    clock.advance(59)
    assert kube.get(JOBS, "ttl", namespace) is not None
    clock.advance(2)
    eventually(lambda: kube.get(JOBS, "ttl", namespace) is None, what="job deleted after its TTL")


def test_a_restarted_controller_does_not_count_a_pod_twice(kube: Kube, namespace: str, kubelet: FakeKubelet,
                                                           clock: FakeClock) -> None:
    def started() -> Runtime:
        rt = Runtime(kube, clock=clock, namespace=namespace)
        controllers.register(rt, kube, clock=clock)
        return rt.start()

    rt = started()
    kube.create(JOBS, job("three", completions=3), namespace)
    [first] = job_pods(kubelet, "three", 1)
    kubelet.finish(first)
    job_pods(kubelet, "three", 2)
    eventually(lambda: status(kube, namespace, "three").get("succeeded") == 1)
    rt.stop()
    rt = started()
    try:
        second = next(p for p in job_pods(kubelet, "three", 2) if p["metadata"]["uid"] != first["metadata"]["uid"])
        kubelet.finish(second)
        eventually(lambda: status(kube, namespace, "three").get("succeeded") == 2)
        assert len(job_pods(kubelet, "three", 3)) == 3
        kube.delete(PODS, first["metadata"]["name"], namespace)
        eventually(lambda: len(kubelet.pods(**{"job-name": "three"})) == 2)
        third = next(p for p in kubelet.pods(**{"job-name": "three"}) if p["status"]["phase"] == "Pending")
        kubelet.finish(third)
        st = eventually(lambda: (lambda s: s if cond(s, "Complete") else None)(status(kube, namespace, "three")))
        assert st["succeeded"] == 3
    finally:
        rt.stop()


def test_an_indexed_job_runs_each_index_once(kube: Kube, namespace: str, runtime: Runtime,
                                             kubelet: FakeKubelet) -> None:
    kube.create(JOBS, job("idx", completions=3, parallelism=2, completionMode="Indexed"), namespace)
    pods = job_pods(kubelet, "idx", 2)
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    assert sorted(by_index) == ["0", "1"]
    one = by_index["1"]
    assert one["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "1"
    assert one["metadata"]["generateName"] == "idx-1-" and one["spec"]["hostname"] == "idx-1"
    assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}} \
        in one["spec"]["containers"][0]["env"]
    kubelet.finish(one)
    pods = job_pods(kubelet, "idx", 3)
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods) \
        == ["0", "1", "2"]
    eventually(lambda: status(kube, namespace, "idx").get("completedIndexes") == "1")
    for p in pods:
        if p["metadata"]["uid"] != one["metadata"]["uid"]:
            kubelet.finish(p)
    st = eventually(lambda: (lambda s: s if cond(s, "Complete") else None)(status(kube, namespace, "idx")))
    assert st["completedIndexes"] == "0-2" and st["succeeded"] == 3
