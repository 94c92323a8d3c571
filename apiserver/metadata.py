"""ObjectMeta rules every write obeys: names, generated names, labels, annotations, owner refs.

The checks and messages follow kube-apiserver's apimachinery validation, so `kubectl` shows the
same `metadata.name: Invalid value: …` lines users know from real clusters.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from typing import Any

from apiserver.errors import INVALID, REQUIRED, TOO_LONG, FieldCause, cause

# Used with fullmatch only: `$` would also match before a trailing newline ("foo\n" is no name).
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_name(prefix: str) -> str:
    """`generateName` + 5 random characters, as the apiserver's name generator does."""
    base = prefix[: 63 - 5]
    return base + "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))


def name_causes(name: str, *, label: bool, path: str = "metadata.name") -> list[FieldCause]:
    if label:
        if len(name) > 63:
            return [cause(INVALID, path, "must be no more than 63 characters", name)]
        if not _DNS1123_LABEL.fullmatch(name):
            return [cause(INVALID, path, LABEL_MSG, name)]
        return []
    if len(name) > 253:
        return [cause(INVALID, path, "must be no more than 253 characters", name)]
    if not _DNS1123_SUBDOMAIN.fullmatch(name):
        return [cause(INVALID, path, SUBDOMAIN_MSG, name)]
    return []


def _qualified_key_causes(key: str, path: str) -> list[FieldCause]:
    prefix, _, name = key.rpartition("/")
    problems = []
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        problems.append(cause(INVALID, path, "prefix part " + SUBDOMAIN_MSG, key))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        problems.append(
            cause(
                INVALID,
                path,
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                key,
            )
        )
    return problems


def validate(meta: dict[str, Any], *, namespace_kind: bool, namespaced: bool) -> list[FieldCause]:
    """Validate the ObjectMeta of an object about to be stored (after name generation)."""
    problems: list[FieldCause] = []
    name = meta.get("name")
    if not name:
        problems.append(cause(REQUIRED, "metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        problems.append(cause(INVALID, "metadata.name", "must be a string", name))
    else:
        problems += name_causes(name, label=namespace_kind)
    namespace = meta.get("namespace")
    if namespaced and not namespace:
        problems.append(cause(REQUIRED, "metadata.namespace"))
    elif namespaced and not isinstance(namespace, str):
        problems.append(cause(INVALID, "metadata.namespace", "must be a string", namespace))
    elif namespaced:
        problems += name_causes(str(namespace), label=True, path="metadata.namespace")
    finalizers = meta.get("finalizers") or []
    if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
        problems.append(cause(INVALID, "metadata.finalizers", "must be a list of strings", finalizers))
    refs = meta.get("ownerReferences") or []
    if not isinstance(refs, list):
        problems.append(cause(INVALID, "metadata.ownerReferences", "must be a list", refs))
        refs = []
    problems += label_causes(meta.get("labels") or {}, "metadata.labels")
    problems += annotation_causes(meta.get("annotations") or {}, "metadata.annotations")
    for i, ref in enumerate(refs):
        for field in ("apiVersion", "kind", "name", "uid"):
            if not isinstance(ref, dict) or not ref.get(field):
                problems.append(cause(REQUIRED, f"metadata.ownerReferences[{i}].{field}"))
    if sum(1 for r in refs if isinstance(r, dict) and r.get("controller")) > 1:
        problems.append(
            cause(
                INVALID,
                "metadata.ownerReferences",
                "Only one reference can have Controller set to true",
                show_value=False,
            )
        )
    return problems


_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def label_causes(labels: Any, path: str) -> list[FieldCause]:
    """Label keys (qualified names) and values, as apimachinery's ValidateLabels; `path` is where the
    map sits (`metadata.labels`, `spec.template.metadata.labels`, `spec.nodeSelector`)."""
    if not isinstance(labels, dict):
        return [cause(INVALID, path, "must be a map of strings", labels)]
    problems: list[FieldCause] = []
    for k, v in labels.items():
        problems += _qualified_key_causes(k, path)
        if not isinstance(v, str):
            problems.append(cause(INVALID, path, _LABEL_VALUE_MSG, v))
            continue
        if len(v) > 63:
            problems.append(cause(INVALID, path, "must be no more than 63 characters", v))
        if not _LABEL_VALUE.fullmatch(v):
            problems.append(cause(INVALID, path, _LABEL_VALUE_MSG, v))
    return problems


def annotation_causes(annotations: Any, path: str) -> list[FieldCause]:
    """Annotation keys (qualified names) and the 256 KiB limit on keys plus values together."""
    if not isinstance(annotations, dict):
        return [cause(INVALID, path, "must be a map of strings", annotations)]
    problems: list[FieldCause] = []
    total = 0
    for k, v in annotations.items():
        problems += _qualified_key_causes(k, path)
        if not isinstance(v, str):
            problems.append(cause(INVALID, f"{path}[{k}]", "must be a string", v))
            continue
        total += len(k) + len(v)
    if total > 256 * 1024:
        problems.append(cause(TOO_LONG, path, "may not be more than 262144 bytes", show_value=False))
    return problems
