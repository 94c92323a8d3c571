"""JSON merge patches (RFC 7386), to tell whether a patch would change an object before sending it.

Controllers compute a merge patch for an object's status or metadata and write it only when
`merge(current, patch) != current`, so a level-triggered reconcile that finds nothing to do makes
no request (and triggers no watch event that would bring it back).
"""

from __future__ import annotations

from typing import Any


def merge(base: Any, patch: Any) -> Any:
    """`base` with the merge patch `patch` applied (neither is modified); None deletes a key."""
    if not isinstance(patch, dict):
        return patch
    out = dict(base) if isinstance(base, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def changes(base: Any, patch: Any) -> bool:
    """Whether applying `patch` to `base` would change it."""
    return bool(merge(base, patch) != base)
