"""Small, domain-free helpers for Kubernetes objects: names, owner references, conditions, labels.

- `short_name`: keep derived names within 63 characters (a Service or label value limit) by
  replacing the tail with a CRC32 of the full name, so long names stay unique and stable.
- `owner_ref`: a controller ownerReference to an object, for garbage collection.
- `set_condition`: metav1.Condition semantics: `lastTransitionTime` changes only when `status`
  does.
"""

from __future__ import annotations

import copy
import zlib
from typing import Any

Obj = dict[str, Any]

MAX_NAME = 63


def short_name(name: str, limit: int = MAX_NAME) -> str:
    if len(name) <= limit:
        return name
    digest = f"{zlib.crc32(name.encode()):08x}"
    return name[: limit - len(digest) - 1].rstrip("-.") + "-" + digest


def meta(obj: Obj) -> Obj:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def name_of(obj: Obj) -> str:
    return str(meta(obj).get("name") or "")


def namespace_of(obj: Obj) -> str:
    return str(meta(obj).get("namespace") or "")


def uid_of(obj: Obj) -> str:
    return str(meta(obj).get("uid") or "")


def labels_of(obj: Obj) -> dict[str, str]:
    value = meta(obj).get("labels")
    return dict(value) if isinstance(value, dict) else {}


def annotations_of(obj: Obj) -> dict[str, str]:
    value = meta(obj).get("annotations")
    return dict(value) if isinstance(value, dict) else {}


def is_deleting(obj: Obj) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


def owner_ref(owner: Obj, *, controller: bool = True) -> Obj:
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": name_of(owner),
        "uid": uid_of(owner),
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: Obj, owner_uid: str) -> bool:
    return any(r.get("uid") == owner_uid for r in meta(obj).get("ownerReferences") or [])


def condition(conditions: list[Obj] | tuple[Obj, ...] | None, type_: str) -> Obj | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def set_condition(conditions: list[Obj] | tuple[Obj, ...] | None, new: Obj, now: str) -> list[Obj]:
    """Conditions with `new` merged in; lastTransitionTime kept unless the status changed."""
    out = [copy.deepcopy(c) for c in conditions or () if c.get("type") != new["type"]]
    old = condition(conditions, new["type"])
    merged = dict(new)
    if old is not None and old.get("status") == new.get("status") and old.get("lastTransitionTime"):
        merged["lastTransitionTime"] = old["lastTransitionTime"]
    else:
        merged["lastTransitionTime"] = now
    out.append(merged)
    return out
