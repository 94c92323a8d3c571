"""Server-side apply (`application/apply-patch+yaml`) with field ownership per field manager.

Each applier's owned fields are kept in `metadata.managedFields` (operation `Apply`, FieldsV1),
so a second apply by the same manager removes the fields it applied before and no longer
applies, and an apply that would change a field another applier owns is refused with 409
Conflict unless `force=true` (which moves the ownership). Lists are owned atomically, which is
what kube-apiserver does for lists without merge keys; the fine-grained ownership of keyed list
items (containers by name, ports by port) is not modelled.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from apiserver import errors, metadata
from apiserver.resources import Obj

Path = tuple[str, ...]
_IDENTITY: set[Path] = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}


def field_set(obj: Any, prefix: Path = ()) -> set[Path]:
    """Leaf paths of an applied configuration (maps recurse; lists and scalars are leaves)."""
    if isinstance(obj, dict) and obj:
        out: set[Path] = set()
        for k, v in obj.items():
            if not prefix and k == "metadata" and isinstance(v, dict):
                for mk, mv in v.items():
                    if mk in ("labels", "annotations") and isinstance(mv, dict):
                        out |= {("metadata", mk, lk) for lk in mv}
                    elif mk not in ("name", "namespace", "resourceVersion", "managedFields", "uid"):
                        out.add(("metadata", mk))
                continue
            out |= field_set(v, (*prefix, k))
        return out
    return {prefix} if prefix else set()


def _to_fields_v1(paths: set[Path]) -> Obj:
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return root


def _from_fields_v1(node: Any, prefix: Path = ()) -> set[Path]:
    if not isinstance(node, dict) or not node:
        return {prefix} if prefix else set()
    out: set[Path] = set()
    for k, v in node.items():
        if k == ".":
            out.add(prefix)
        elif k.startswith("f:"):
            out |= _from_fields_v1(v, (*prefix, k[2:]))
    return out


def _managers(obj: Obj) -> dict[str, set[Path]]:
    out: dict[str, set[Path]] = {}
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        if entry.get("operation") == "Apply" and entry.get("manager"):
            out[entry["manager"]] = _from_fields_v1(entry.get("fieldsV1") or {})
    return out


def _lookup(obj: Any, path: Path) -> tuple[bool, Any]:
    cur = obj
    for part in path:
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _remove(obj: Obj, path: Path) -> None:
    parents = []
    cur: Any = obj
    for part in path[:-1]:
        if not isinstance(cur, dict) or part not in cur:
            return
        parents.append((cur, part))
        cur = cur[part]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    for parent, part in reversed(parents):
        if parent[part] == {} and (parent is not obj or part not in ("metadata", "spec")):
            del parent[part]
        else:
            break


def _merge(base: Any, applied: Any) -> Any:
    if isinstance(base, dict) and isinstance(applied, dict):
        out = dict(base)
        for k, v in applied.items():
            out[k] = _merge(base.get(k), v)
        return out
    return copy.deepcopy(applied)


def record(
    body: Obj,
    existing: Obj | None,
    applied: Obj,
    manager: str,
    api_version: str,
    sets: dict[str, set[Path]] | None = None,
) -> None:
    """Write `managedFields` into `body`: `manager` now owns exactly what it applied."""
    sets = dict(sets if sets is not None else _managers(existing or {}))
    sets[manager] = field_set(applied) - _IDENTITY
    others = [
        e for e in ((existing or {}).get("metadata") or {}).get("managedFields") or [] if e.get("operation") != "Apply"
    ]
    entries = [
        {
            "manager": m,
            "operation": "Apply",
            "apiVersion": api_version,
            "time": metadata.now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": _to_fields_v1(paths),
        }
        for m, paths in sorted(sets.items())
        if paths
    ]
    body.setdefault("metadata", {})["managedFields"] = others + entries


def apply(
    existing: Obj, applied: Obj, manager: str, force: bool, api_version: str, plural: str, group: str, name: str
) -> Obj:
    """The object after `manager` applies `applied` to `existing` (raises 409 on conflicts)."""
    sets = _managers(existing)
    mine = field_set(applied) - _IDENTITY
    conflicts: list[tuple[str, Path]] = []
    for other, owned in sets.items():
        if other == manager:
            continue
        for path in sorted(mine & owned):
            found, current = _lookup(existing, path)
            if found and current != _lookup(applied, path)[1]:
                conflicts.append((other, path))
    if conflicts and not force:
        n = len(conflicts)
        if n == 1:  # worded like kube-apiserver's fieldmanager (getConflictMessage)
            lines = f'conflict with "{conflicts[0][0]}": .{".".join(conflicts[0][1])}'
        else:
            by_manager: dict[str, list[Path]] = {}
            for m, p in conflicts:
                by_manager.setdefault(m, []).append(p)
            lines = "\n".join(
                f'conflicts with "{m}":\n' + "\n".join(f"- .{'.'.join(p)}" for p in paths)
                for m, paths in sorted(by_manager.items())
            )
        raise errors.ApiError(
            409,
            "Conflict",
            f"Apply failed with {n} conflict{'s' if n > 1 else ''}: {lines}",
            {
                "name": name,
                "group": group,
                "kind": plural,
                "causes": [
                    {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": "." + ".".join(p)}
                    for m, p in conflicts
                ],
            },
        )
    for other, path in conflicts:
        sets[other].discard(path)
    owned_by_others: set[Path] = set().union(*(p for m, p in sets.items() if m != manager))
    merged = copy.deepcopy(existing)
    for path in sorted(sets.get(manager, set()) - mine - owned_by_others, key=len, reverse=True):
        _remove(merged, path)
    merged = _merge(merged, {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")})
    merged["metadata"]["resourceVersion"] = (applied.get("metadata") or {}).get("resourceVersion")
    if not merged["metadata"]["resourceVersion"]:
        merged["metadata"].pop("resourceVersion")
    record(merged, existing, applied, manager, api_version, sets)
    out: Obj = json.loads(json.dumps(merged))
    return out
