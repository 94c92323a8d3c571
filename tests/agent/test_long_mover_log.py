"""`latestMoverStatus.logs` of a mover whose log is longer than what the agent reads of it.

rsync runs with `--itemize-changes`: a first sync of many files logs one line per file before the
summary VolSync keeps ("sent … bytes received … bytes", "total size", "Rsync completed in"). The
agent reads the log with `limitBytes` (256 KiB), and `limitBytes` keeps the log's *head*, as
kubelet does: past ~4000 itemized files the summary would be cut off and `logs` empty. The agent
reads the end (`tailLines`, with `limitBytes` as a cap), which keeps it. The mover here is a busybox Job printing such
a log, owned and labelled as the agent's own, read through the controller's informers.
"""

from __future__ import annotations

import pytest
from support.harness import Harness
from support.waiting import eventually

from agent.jobs import ANNOTATION_ITERATION, CREATED_BY, mover_name
from agent.kinds import REPLICATION_SOURCES
from api.volsync import LABEL_CREATED_BY
from kube import objects
from kube.rest import JOBS

pytestmark = pytest.mark.timeout(120)
LONG_LOG = ("seq 6000 | sed 's|^|>f+++++++++ dir/a-file-with-a-longish-name-|'; "
            'echo "sent 1,234 bytes  received 5,678 bytes  9.1K bytes/sec"; '
            'echo "total size is 42  speedup is 0.01"; echo "Rsync completed in 3s"')


def test_the_summary_of_a_long_mover_log_is_kept(harness: Harness) -> None:
    h = harness
    rs = h.kube.create(REPLICATION_SOURCES, {"metadata": {"name": "rs", "namespace": h.src}, "spec": {
        "sourcePVC": "data", "paused": True, "rsync": {"address": "10.0.0.9", "copyMethod": "Direct"}}})
    labels = {LABEL_CREATED_BY: CREATED_BY}
    h.kube.create(JOBS, {"metadata": {
        "name": mover_name("source", "rs"), "namespace": h.src, "labels": labels,
        "annotations": {ANNOTATION_ITERATION: "1-abc"}, "ownerReferences": [objects.owner_ref(rs)]},
        "spec": {"backoffLimit": 2, "template": {"metadata": {"labels": labels}, "spec": {
            "restartPolicy": "Never", "containers": [
                {"name": "rsync", "image": "busybox", "command": ["sh", "-c", LONG_LOG]}]}}}})
    seen = eventually(lambda: (lambda t: t if t is not None and not t.running else None)(
        h.controller.movers.transfer(rs)), 60, what="the mover Job finished")
    assert seen is not None and seen.succeeded
    assert seen.logs.endswith("Rsync completed in 3s"), seen.logs[-200:]
