"""Which Pod of a mover Job the agent reads: the one whose end decided the Job's state.

A failed mover Pod and its replacement can be created in the same second (creation times have a
one-second resolution), and then sort by their random name suffixes. The destination's completion
(the exit code the source signalled) and the source's log tail must come from the Pod that
succeeded, not from the failed predecessor that happens to sort last: reading the killed Pod's 137
would report a good transfer as failed and drop its image.
"""

from __future__ import annotations

import json
from typing import Any, cast

from support.replication_objects import NS, rd

from agent.jobmovers import JobMovers
from agent.jobs import ANNOTATION_ITERATION, mover_name
from agent.moverpods import observe_job
from kube.clock import FakeClock
from kube.rest import Kube

Obj = dict[str, Any]
JOB_UID = "uid-dst-job"
SAME_SECOND = "2026-03-02T10:00:00Z"


def _pod(name: str, phase: str, *, code: int, message: str = "") -> Obj:
    terminated: Obj = {"exitCode": code, **({"message": message} if message else {})}
    return {"metadata": {"name": name, "namespace": NS, "creationTimestamp": SAME_SECOND,
                         "ownerReferences": [{"kind": "Job", "name": "j", "uid": JOB_UID, "controller": True}]},
            "status": {"phase": phase, "containerStatuses": [{"name": "rsync", "state": {"terminated": terminated}}]}}


def test_a_succeeded_job_is_read_from_its_succeeded_pod_not_the_failed_one_of_the_same_second() -> None:
    owner = rd()
    job: Obj = {"metadata": {"name": mover_name("destination", owner["metadata"]["name"]), "namespace": NS,
                        "uid": JOB_UID, "annotations": {ANNOTATION_ITERATION: "3-abc"},
                        "ownerReferences": [{"kind": owner["kind"], "name": owner["metadata"]["name"],
                                             "uid": owner["metadata"]["uid"], "controller": True}]},
           "spec": {"backoffLimit": 2},
           "status": {"succeeded": 1, "failed": 1, "conditions": [{"type": "Complete", "status": "True"}]}}
    # the killed Pod sorts last: same second, and "zz" > "aa"
    pods = [_pod("volsync-rsync-dst-x-aaaaa", "Succeeded", code=0,
                 message=json.dumps({"code": 0, "sourceIteration": "7-src"})),
            _pod("volsync-rsync-dst-x-zzzzz", "Failed", code=137)]
    assert observe_job(job, pods).pod == "volsync-rsync-dst-x-aaaaa"

    name = job["metadata"]["name"]
    movers = JobMovers(cast(Kube, None), lambda ns, wanted: job if wanted == name else None,
                       lambda ns: pods, image="img", clock=FakeClock())  # server() reads caches only
    view = movers.server(owner)
    assert view is not None and (view.iteration, view.completion, view.source_iteration) == ("3-abc", 0, "7-src")


def test_a_succeeded_destination_job_waits_for_its_pods_exit_before_completing() -> None:
    """The Jobs informer can deliver the Job's success before the Pods informer delivers the Pod's
    exit: completing then would publish the image without the source iteration the termination
    message names (`latestImageSourceIteration: null`)."""
    owner = rd()
    job: Obj = {"metadata": {"name": mover_name("destination", owner["metadata"]["name"]), "namespace": NS,
                             "uid": JOB_UID, "annotations": {ANNOTATION_ITERATION: "3-abc"},
                             "ownerReferences": [{"kind": owner["kind"], "name": owner["metadata"]["name"],
                                                  "uid": owner["metadata"]["uid"], "controller": True}]},
                "spec": {"backoffLimit": 2}, "status": {"succeeded": 1}}
    running = _pod("volsync-rsync-dst-x-aaaaa", "Running", code=0)
    running["status"]["containerStatuses"][0]["state"] = {"running": {}}
    pods = [running]
    name = job["metadata"]["name"]
    movers = JobMovers(cast(Kube, None), lambda ns, wanted: job if wanted == name else None,
                       lambda ns: pods, image="img", clock=FakeClock())
    view = movers.server(owner)
    assert view is not None and (view.iteration, view.completion) == ("3-abc", None)
    pods[0] = _pod("volsync-rsync-dst-x-zzzzz", "Failed", code=137)  # only its failed predecessor is cached
    view = movers.server(owner)
    assert view is not None and (view.completion, view.source_iteration) == (0, None), "the predecessor's 137"
    pods[0] = _pod("volsync-rsync-dst-x-aaaaa", "Succeeded", code=0,
                   message=json.dumps({"code": 0, "sourceIteration": "7-src"}))
    view = movers.server(owner)
    assert view is not None and (view.completion, view.source_iteration) == (0, "7-src")
    pods.clear()  # the Pod is gone (deleted, garbage-collected): the Job's success alone completes it
    view = movers.server(owner)
    assert view is not None and (view.completion, view.source_iteration) == (0, None)
