"""Every API write the destination planner plans is one the rendered agent RBAC (`hub.rendering.RULES`) grants.

A write the RBAC does not grant is refused with 403 on a real cluster and leaves the replication in
`Synchronizing=False/Error` for good. The destination planner patches the selector of a Service its
mover Pods are not selected by, and deletes a Service of the retired agent-loopback class: RULES grant
both. Pure: the plan's actions are matched against RULES.
"""

from __future__ import annotations

from typing import Any

from support.replication_objects import DEST_KEYS, MAIN_KEYS, SOURCE_KEYS, T0, pvc, rd, secret, service, ts

from agent import destination
from agent.destination import DestinationView, plan
from agent.plans import Delete, Ensure, Patch
from hub.rendering import RULES
from kube.rest import Resource

Obj = dict[str, Any]
SVC = "volsync-rsync-dst-backup"
SECRETS = {n: secret(n, keys=k) for n, k in (("volsync-rsync-dst-main-backup", MAIN_KEYS),
                                             ("volsync-rsync-dst-src-backup", SOURCE_KEYS),
                                             ("volsync-rsync-dst-dest-backup", DEST_KEYS))}


def granted(verb: str, res: Resource) -> bool:
    return any(res.group in rule["apiGroups"] and res.plural in rule["resources"] and verb in rule["verbs"]
               for rule in RULES)


def writes(svc: Obj) -> set[tuple[str, str]]:
    rd_obj = rd(status={"lastSyncStartTime": ts(T0)})
    p = plan(DestinationView(rd=rd_obj, now=T0, service=svc, pvc=pvc("volsync-backup-dst", owner=rd()),
                             secrets=dict(SECRETS)))
    refused: set[tuple[str, str]] = set()
    for action in [*p.before, *p.after]:
        if isinstance(action, Ensure | Patch | Delete):
            verb = {Ensure: "create", Patch: "patch", Delete: "delete"}[type(action)]
            if not granted(verb, action.resource):
                refused.add((verb, action.resource.plural))
    return refused


def test_the_service_migrations_of_the_destination_are_granted() -> None:
    wrong = service(SVC, owner=rd())
    wrong["spec"]["selector"] = {"app.kubernetes.io/name": "dst-backup", "app.kubernetes.io/part-of": "volsync"}
    retired = service(SVC, owner=rd(), type="LoadBalancer", ingress=[{"ip": "127.64.1.1"}])
    retired["spec"]["loadBalancerClass"] = destination.RETIRED_LB_CLASS
    assert writes(wrong) | writes(retired) == set()
