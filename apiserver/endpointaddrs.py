"""Endpoint addresses a client may not publish: loopback, link-local and unspecified addresses.

kube-apiserver's validation (`ValidateNonSpecialIP`) refuses, in v1 Endpoints and in
EndpointSlices, addresses that lead to the node itself rather than to a Pod or a routable host:
``0.0.0.0``/``::``, the loopback ranges (``127.0.0.0/8``, ``::1``), link-local unicast
(``169.254.0.0/16``, ``fe80::/10``) and link-local multicast (``224.0.0.0/24``, ``ff02::/16``).
Here this also keeps a cluster's user from pointing a Service at the host's loopback, where a
service proxy would otherwise forward it. The API server's own write of ``default/kubernetes``
(address ``127.0.0.1``) passes `Options.internal`, which no request can set.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from apiserver.errors import INVALID, FieldCause, cause

ENDPOINTS_KEY = "/endpoints"
ENDPOINTSLICES_KEY = "discovery.k8s.io/endpointslices"
_LINK_LOCAL_MULTICAST = (ipaddress.ip_network("224.0.0.0/24"), ipaddress.ip_network("ff02::/16"))


def _special(text: Any) -> str:
    """Why `text` may not be an endpoint address, or "" (also for a non-IP: other checks apply)."""
    try:
        ip = ipaddress.ip_address(str(text))
    except ValueError:
        return ""
    if ip.is_unspecified:
        return "may not be unspecified (0.0.0.0, ::)"
    if ip.is_loopback:
        return "may not be in the loopback range (127.0.0.0/8, ::1/128)"
    if ip.is_link_local:
        return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    if any(ip in net for net in _LINK_LOCAL_MULTICAST):
        return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/16)"
    return ""


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def causes(key: str, obj: dict[str, Any]) -> list[FieldCause]:
    """The special addresses of an Endpoints or EndpointSlice object (nothing for other kinds)."""
    found: list[tuple[str, Any]] = []
    if key == ENDPOINTS_KEY:
        for i, subset in enumerate(_items(obj.get("subsets"))):
            for part in ("addresses", "notReadyAddresses"):
                for j, addr in enumerate(_items((subset or {}).get(part) if isinstance(subset, dict) else None)):
                    if isinstance(addr, dict):
                        found.append((f"subsets[{i}].{part}[{j}].ip", addr.get("ip")))
    elif key == ENDPOINTSLICES_KEY:
        for i, ep in enumerate(_items(obj.get("endpoints"))):
            for j, addr in enumerate(_items(ep.get("addresses") if isinstance(ep, dict) else None)):
                found.append((f"endpoints[{i}].addresses[{j}]", addr))
    return [cause(INVALID, path, why, value) for path, value in found if (why := _special(value))]
