"""Service-account tokens for projected volumes: a TokenRequest bound to the Pod, as kubelet asks.

`TokenIssuer.issue(pod, source)` posts `serviceaccounts/<sa>/token` with the source's `audience`
and `expirationSeconds` (default 3607 as kubelet's admission sets it, at least 600) and a
`boundObjectRef` naming the Pod, and returns the token with when it was issued and when it
expires (the volume code renews it at 80 % of that life). A server without the subresource (404)
or that refuses it gives no token file and a Warning Event `FailedMount`, once per Pod and reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from kube.clock import Clock, parse_rfc3339
from kube.events import Recorder
from kube.rest import Kube

log = logging.getLogger("localcluster.kubelet.tokens")
DEFAULT_EXPIRATION = 3607
MIN_EXPIRATION = 600


class TokenIssuer:
    """Asks the API for bound service-account tokens (see the module docstring)."""

    def __init__(self, kube: Kube, recorder: Recorder, clock: Clock) -> None:
        self.kube = kube
        self.recorder = recorder
        self.clock = clock

    def issue(self, pod: Mapping[str, Any], source: Mapping[str, Any]) -> tuple[str, datetime, datetime] | None:
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace"))
        account = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        seconds = max(int(source.get("expirationSeconds") or DEFAULT_EXPIRATION), MIN_EXPIRATION)
        spec: dict[str, Any] = {"expirationSeconds": seconds,
                                "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta.get("name"),
                                                   "uid": meta.get("uid")}}
        if source.get("audience"):
            spec["audiences"] = [str(source["audience"])]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        now = self.clock.now()
        try:
            answer = self.kube.request(
                "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body=body)
        except ApiException as exc:
            self.recorder.event(dict(pod), "Warning", "FailedMount",
                                f'MountVolume.SetUp failed: failed to fetch token for service account "{account}": '
                                f"{exc.status} {exc.reason}")
            return None
        status = answer.get("status") or {}
        token = status.get("token")
        if not token:
            return None
        expiry = parse_rfc3339(status.get("expirationTimestamp")) or now + timedelta(seconds=seconds)
        return str(token), now, expiry
