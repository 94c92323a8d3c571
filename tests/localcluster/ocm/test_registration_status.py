"""The registration agent's pure parts: the status it writes and the Node resources it sums."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kube.clock import rfc3339
from kube.objects import condition
from kube.rest import Obj
from localcluster.ocm.leaseplan import AVAILABLE, JOINED
from localcluster.ocm.registration import SpokeFacts, desired_status, summed_resources

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
HEALTHY = SpokeFacts(True, version="v1.32.0", capacity={"cpu": "2", "memory": "1Gi"},
                     allocatable={"cpu": "2", "memory": "1Gi"})


def test_a_first_report_sets_joined_available_version_and_resources() -> None:
    patch = desired_status({}, HEALTHY, NOW)
    assert patch is not None
    assert (condition(patch["conditions"], JOINED) or {})["status"] == "True"
    available = condition(patch["conditions"], AVAILABLE) or {}
    assert (available["status"], available["reason"], available["lastTransitionTime"]) == \
        ("True", "ManagedClusterAvailable", rfc3339(NOW))
    assert patch["version"] == {"kubernetes": "v1.32.0"}
    assert patch["capacity"] == patch["allocatable"] == {"cpu": "2", "memory": "1Gi"}


def test_an_unchanged_status_writes_nothing_and_transitions_keep_their_time() -> None:
    first = desired_status({}, HEALTHY, NOW)
    assert first is not None
    assert desired_status(first, HEALTHY, NOW + timedelta(minutes=1)) is None
    down = desired_status(first, SpokeFacts(False, "connection refused"), NOW + timedelta(minutes=2))
    assert down is not None and set(down) == {"conditions"}  # version and resources kept as they were
    available = condition(down["conditions"], AVAILABLE) or {}
    assert (available["status"], available["reason"]) == ("False", "ManagedClusterKubeAPIServerUnavailable")
    assert "connection refused" in available["message"]
    assert available["lastTransitionTime"] == rfc3339(NOW + timedelta(minutes=2))
    assert (condition(down["conditions"], JOINED) or {})["lastTransitionTime"] == rfc3339(NOW)


def test_node_resources_are_summed_in_kubernetes_quantities() -> None:
    nodes: list[Obj] = [{"status": {"capacity": {"cpu": "1500m", "memory": "512Mi", "pods": "110"}}},
             {"status": {"capacity": {"cpu": "2", "memory": "1536Mi"}}}, {"status": {}}]
    assert summed_resources(nodes, "capacity") == {"cpu": "3500m", "memory": "2Gi"}
    assert summed_resources([], "allocatable") == {"cpu": "0", "memory": "0"}
