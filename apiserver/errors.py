"""Kubernetes-style API errors and their `Status` bodies.

Every rejection the embedded API server makes is an `ApiError`; the HTTP layer turns it into a
`Status` object exactly as kube-apiserver does, so kubectl prints `Error from server (Reason): …`
and the Python client raises the matching `ApiException` subclass.

    ApiError
     ├── bad_request            400 BadRequest
     ├── unauthorized           401 Unauthorized
     ├── forbidden              403 Forbidden
     ├── not_found              404 NotFound
     ├── method_not_allowed     405 MethodNotAllowed
     ├── already_exists         409 AlreadyExists
     ├── conflict               409 Conflict
     ├── gone                   410 Expired (inside watch streams)
     ├── unsupported_media_type 415 UnsupportedMediaType
     ├── invalid                422 Invalid (with field causes)
     └── internal               500 InternalError
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Field error types as kube-apiserver spells them: (cause reason, human prefix).
REQUIRED = ("FieldValueRequired", "Required value")
INVALID = ("FieldValueInvalid", "Invalid value")
TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")
NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
FORBIDDEN = ("FieldValueForbidden", "Forbidden")
TOO_LONG = ("FieldValueTooLong", "Too long")
TOO_MANY = ("FieldValueTooMany", "Too many")
DUPLICATE = ("FieldValueDuplicate", "Duplicate value")
NOT_FOUND = ("FieldValueNotFound", "Not found")


@dataclass(frozen=True)
class FieldCause:
    """One field-level problem: `field` is a dotted path (`spec.rsync.copyMethod`, `spec.ports[0]`),
    `reason` a Kubernetes CauseType, `message` the text after the field name as kubectl shows it
    (for example `Unsupported value: "Bogus": supported values: "Direct", "Snapshot"`)."""

    field: str
    reason: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


def cause(
    kind: tuple[str, str], path: str, detail: str = "", value: Any = None, *, show_value: bool = True
) -> FieldCause:
    """Build a FieldCause the way k8s.io/apimachinery's field.Error formats itself."""
    reason, prefix = kind
    text = prefix
    if show_value and kind not in (REQUIRED, FORBIDDEN, TOO_MANY):
        text += f": {_format_value(value)}"
    if detail:
        text += f": {detail}"
    return FieldCause(path, reason, text)


def _format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return repr(value)


@dataclass
class ApiError(Exception):
    """One rejection. `details` is None when kube-apiserver's Status has no details (BadRequest,
    Unauthorized, Expired, UnsupportedMediaType) and `{}` where it sends an empty `"details":{}`
    (an unknown path, a method the path does not take)."""

    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        """The `Status` in the field order of Go's `metav1.Status` (and of its details and causes),
        empty fields omitted as `omitempty` does: clients that compare bodies see kube's text."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = _ordered_details(self.details)
        body["code"] = self.code
        return body

    def body_text(self) -> str:
        """The response body as kube-apiserver writes it: compact JSON and a trailing newline."""
        return json.dumps(self.status(), separators=(",", ":"), ensure_ascii=False) + "\n"


_DETAIL_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")
_CAUSE_ORDER = ("reason", "message", "field")


def _ordered_details(details: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: details[k] for k in _DETAIL_ORDER if details.get(k)}
    if "causes" in out:
        out["causes"] = [{k: c[k] for k in _CAUSE_ORDER if c.get(k)} for c in out["causes"]]
    return out


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def _details(name: str, group: str, kind: str) -> dict[str, Any]:
    return {"name": name, "group": group, "kind": kind}


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def not_found(plural: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(plural, group)} "{name}" not found', _details(name, group, plural))


def path_not_found() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message, {})


def forbidden(plural: str, group: str, name: str, why: str) -> ApiError:
    """403 Forbidden as an admission refusal words it: `pods "x" is forbidden: <why>`."""
    return ApiError(
        403, "Forbidden", f'{_qualified(plural, group)} "{name}" is forbidden: {why}', _details(name, group, plural)
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{_qualified(plural, group)} "{name}" already exists',
        _details(name, group, plural),
    )


def conflict(plural: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {why}',
        _details(name, group, plural),
    )


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unsupported_media_type(
    accepted: tuple[str, ...] = (
        "application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"
    ),
) -> ApiError:
    """415, worded as kube-apiserver does, naming the media types the verb takes (a patch's by default)."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: " + ", ".join(accepted),
    )


def invalid(kind: str, group: str, name: str, causes: list[FieldCause]) -> ApiError:
    """422 Invalid, worded like kube-apiserver: `Kind.group "name" is invalid: [a: …, b: …]`."""
    qualified = f"{kind}.{group}" if group else kind
    parts = [str(c) for c in causes]
    joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = _details(name, group, kind)
    details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]
    return ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {joined}', details)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]})
