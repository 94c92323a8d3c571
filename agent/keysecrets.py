"""The ssh keys of a replication (pure): the Secret named in `spec.rsync.sshKeys`, or generated ones.

Without `sshKeys`, each side generates a key authority Secret (`volsync-rsync-<side>-main-<name>`)
and splits it into the Secret its own mover uses and the one the user copies to the other side
(`...-src-...`, `...-dest-...`), as VolSync does.
"""

from __future__ import annotations

import base64
from typing import Any

from agent.iterations import CREATED_BY, Context
from agent.plans import Ensure, GenerateKeys
from api.volsync import LABEL_CREATED_BY
from kube import objects
from kube.rest import SECRETS

Obj = dict[str, Any]


def key_secret_names(role: str, name: str) -> tuple[str, str, str]:
    """(main, src, dest) Secret names for keys a replication object generates."""
    side = "dst" if role == "destination" else "src"
    main, src, dest = (objects.short_name(f"volsync-rsync-{side}-{part}-{name}") for part in ("main", "src", "dest"))
    return main, src, dest


def generated_keys(ctx: Context, secrets: dict[str, Obj | None]) -> tuple[list[Any], bool]:
    """Actions creating the key Secrets from the authority; True once all three exist."""
    main_name, src_name, dest_name = key_secret_names(ctx.role, ctx.name)
    main = secrets.get(main_name)
    labels = {LABEL_CREATED_BY: CREATED_BY}
    if main is None:
        return [GenerateKeys(ctx.namespace, main_name, ctx.obj, labels)], False
    data = main.get("data") or {}
    actions: list[Any] = []
    parts = {
        src_name: ("source", "source.pub", "destination.pub"),
        dest_name: ("destination", "destination.pub", "source.pub"),
    }
    for name, keys in parts.items():
        if secrets.get(name) is None:
            secret = ctx.owned(SECRETS, name, extra={"type": "Opaque", "data": {k: data.get(k, "") for k in keys}})
            actions.append(Ensure(SECRETS, secret))
    return actions, not actions


def key_secret(ctx: Context, secrets: dict[str, Obj | None], needed: tuple[str, ...],
               generated: int) -> tuple[list[Any], str | None, str | None]:
    """(actions, the Secret this side's mover uses, error). A Secret named in `spec.rsync.sshKeys` must
    hold `needed`; without one, keys are generated and this side uses the generated Secret at index
    `generated` of `key_secret_names` (1: the src Secret, 2: the dest Secret) once all three exist."""
    assert ctx.spec.rsync is not None
    if ctx.spec.rsync.ssh_keys:
        name = ctx.spec.rsync.ssh_keys
        return [], name, secret_problem(secrets.get(name), name, needed)
    actions, ready = generated_keys(ctx, secrets)
    return actions, (key_secret_names(ctx.role, ctx.name)[generated] if ready else None), None


def secret_problem(secret: Obj | None, name: str, needed: tuple[str, ...]) -> str | None:
    if secret is None:
        return f"ssh keys Secret {name!r} not found"
    data = secret.get("data") or {}
    missing = [k for k in needed if not data.get(k)]
    if missing:
        return f"ssh keys Secret {name!r} is missing keys: {', '.join(missing)}"
    for k in needed:
        try:
            base64.b64decode(data[k], validate=True)
        except ValueError:
            return f"ssh keys Secret {name!r} has invalid base64 in {k!r}"
    return None
