"""`meta.k8s.io/v1` Table responses: printer columns, the JSONPath subset they use, and ages.

kubectl asks for Tables on `get` (lists, single objects and watch events) and prints the cells as
they come, so the server renders them: CRD `additionalPrinterColumns` through a small JSONPath
evaluator, built-in columns through Python functions, dates as human durations like
kube-apiserver's printers ("5m", "3h12m", "<invalid>" for the future).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from apiserver.resources import Column, Obj, ResourceType

TABLE_COLUMN_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}

_TOKEN = re.compile(
    r"""\.([A-Za-z0-9_\-]+)|\[(\*|-?\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*["']([^"']*)["']\)\]|\[['"]([^'"]+)['"]\]"""
)


Token = tuple[str | None, str | None, str | None, str | None, str | None]


@functools.lru_cache(maxsize=1024)
def _tokens(path: str) -> tuple[Token, ...] | None:
    """A path parsed once (printer columns evaluate the same few paths for every row)."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    path = path.removeprefix("$")
    tokens: list[Token] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return None
        pos = m.end()
        key, index, fkey, fval, quoted = m.groups()
        tokens.append((key, index, fkey, fval, quoted))
    return tuple(tokens)


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset printer columns use: `.a.b`, `[0]`, `[*]`, `['k']`,
    `[?(@.type=="X")]`. Returns every match (possibly none)."""
    tokens = _tokens(path)
    if tokens is None:
        return []
    current = [obj]
    for key, index, fkey, fval, quoted in tokens:
        nxt: list[Any] = []
        for value in current:
            if key is not None or quoted is not None:
                k = key if key is not None else quoted
                if isinstance(value, dict) and k in value:
                    nxt.append(value[k])
            elif index is not None:
                if isinstance(value, list):
                    if index == "*":
                        nxt.extend(value)
                    elif -len(value) <= int(index) < len(value):
                        nxt.append(value[int(index)])
                elif isinstance(value, dict) and index == "*":
                    nxt.extend(value.values())
            elif fkey is not None and isinstance(value, list):
                for item in value:
                    found = jsonpath(item, "." + fkey)
                    if found and str(_scalar(found[0])) == fval:
                        nxt.append(item)
        current = nxt
    return current


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """kube's duration.HumanDuration: the short form kubectl shows in AGE columns."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rem = (s % 3600) // 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d{rem}h" if rem else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(value: Any, now: datetime | None = None) -> str:
    t = parse_time(value)
    if t is None:
        return "<unknown>"
    now = now or datetime.now(UTC)
    return human_duration((now - t).total_seconds())


def _cell(col: Column, obj: Obj, now: datetime) -> Any:
    if col.compute is not None:
        return col.compute(obj)
    found = jsonpath(obj, col.json_path)
    if not found:
        return None
    if col.type == "date":
        return age(found[0], now)
    if len(found) > 1:
        return ",".join(str(_scalar(v)) for v in found)
    value = found[0]
    if col.type == "string" and not isinstance(value, str):
        return _render(value)
    return value


def _render(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return value


def column_definitions(rt: ResourceType) -> list[dict[str, Any]]:
    defs = [dict(TABLE_COLUMN_NAME)]
    for c in rt.columns:
        defs.append(
            {
                "name": c.name,
                "type": "string" if c.type == "date" else c.type,
                "format": c.format,
                "description": c.description or c.name,
                "priority": c.priority,
            }
        )
    return defs


def partial_metadata(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def row(rt: ResourceType, obj: Obj, now: datetime, include: str = "Metadata") -> Obj:
    cells: list[Any] = [obj.get("metadata", {}).get("name", "")]
    cells.extend(_cell(c, obj, now) for c in rt.columns)
    r: Obj = {"cells": cells}
    if include == "Object":
        r["object"] = obj
    elif include != "None":
        r["object"] = partial_metadata(obj)
    return r


def table(
    rt: ResourceType, objs: Iterable[Obj], metadata: Obj, *, include: str = "Metadata", with_columns: bool = True
) -> Obj:
    now = datetime.now(UTC)
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata}
    out["columnDefinitions"] = column_definitions(rt) if with_columns else None
    out["rows"] = [row(rt, o, now, include) for o in objs]
    return out
