"""What the embedded platform waits for before the hub prints its ready line (`embedded.platform`):
every managed cluster accepted and joined, its availability known. Pure: the ManagedCluster as the
registration agent and the cluster manager leave it."""

from __future__ import annotations

from typing import Any

import pytest

from embedded.platform import not_joined


def _cluster(**statuses: str) -> dict[str, Any]:
    return {"metadata": {"name": "cluster1"},
            "status": {"conditions": [{"type": t, "status": s, "reason": "R"} for t, s in statuses.items()]}}


ACCEPTED, JOINED, AVAILABLE = "HubAcceptedManagedCluster", "ManagedClusterJoined", "ManagedClusterConditionAvailable"


@pytest.mark.parametrize(("cluster", "lacking"), [
    (None, ["not registered"]),
    ({"metadata": {"name": "cluster1"}}, [ACCEPTED, JOINED, AVAILABLE]),  # created, nobody accepted it yet
    (_cluster(**{ACCEPTED: "True"}), [JOINED, AVAILABLE]),  # accepted, the agent has not joined yet
    (_cluster(**{ACCEPTED: "False", JOINED: "True", AVAILABLE: "True"}), [ACCEPTED]),  # denied
    (_cluster(**{ACCEPTED: "True", JOINED: "True"}), [AVAILABLE]),
    (_cluster(**{ACCEPTED: "True", JOINED: "True", AVAILABLE: "False"}), [AVAILABLE]),
    (_cluster(**{ACCEPTED: "True", JOINED: "True", AVAILABLE: "True"}), []),
    # a cluster frozen while an earlier hub ran: its lease expired; a restarted hub comes up and reports it
    (_cluster(**{ACCEPTED: "True", JOINED: "True", AVAILABLE: "Unknown"}), []),
])
def test_a_cluster_counts_as_joined_once_accepted_joined_and_its_availability_known(
        cluster: dict[str, Any] | None, lacking: list[str]) -> None:
    assert not_joined(cluster) == lacking
