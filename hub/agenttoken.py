"""A cluster's agent token Secret on the hub (`volsync-agent-token` in the cluster's namespace).

The addon controller ensures it before rendering the agent's manifests: created with a random token,
owned by the ManagedClusterAddOn (so it goes with it), and never rotated; the REST API's token store
(`hub/tokens.py`) reads the same Secrets.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Any

from kubernetes.client.exceptions import ApiException

from hub import ocm
from kube import objects
from kube.informing import Informer
from kube.rest import SECRETS, Kube

Obj = dict[str, Any]


def ensure(kube: Kube, cache: Informer, cluster: str, addon: Obj) -> str:
    """The cluster's agent token: created (random, owned by the MCA) if absent, never rotated."""
    # the cache may not have our own create yet
    secret = cache.get(cluster, ocm.TOKEN_SECRET) or kube.get(SECRETS, ocm.TOKEN_SECRET, cluster)
    if secret is None:
        token = secrets.token_urlsafe(32)
        body = {
            "metadata": {"name": ocm.TOKEN_SECRET, "namespace": cluster, "labels": {ocm.TOKEN_LABEL: "true"},
                         "ownerReferences": [objects.owner_ref(addon)]},
            "type": "Opaque",
            "data": {"token": base64.b64encode(token.encode()).decode()},
        }
        try:
            kube.create(SECRETS, body)
            return token
        except ApiException as exc:
            if exc.status != 409:
                raise
            secret = kube.get(SECRETS, ocm.TOKEN_SECRET, cluster)
            if secret is None:
                raise
    try:
        token = base64.b64decode((secret.get("data") or {}).get("token") or "").decode()
    except (binascii.Error, UnicodeDecodeError):
        token = ""
    if not token:
        raise ValueError(f"Secret {cluster}/{ocm.TOKEN_SECRET} has no usable token")
    return token
