"""Resource quantities as kube-apiserver reads and prints them: `resource.Quantity` parsing (a value
its decoder refuses is a 400 before validation), its canonical `String()` for messages, and the
resource requirements rules of `ValidateContainerResourceRequirements`.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from apiserver import errors
from apiserver.errors import INVALID, FieldCause, cause

_QUANTITY = re.compile(r"([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)")
_QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_SUFFIXES = {"": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "k": 10**3, "M": 10**6,
             "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
             "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip
_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def parse_quantity(text: Any) -> Decimal | None:
    """A resource.Quantity's value, or None when kube's decoder would refuse it."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return Decimal(str(text))
    match = _QUANTITY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    number, suffix = match.groups()
    try:
        if suffix in _SUFFIXES:
            return Decimal(number) * Decimal(str(_SUFFIXES[suffix]))
        if suffix[:1] in "eE" and re.fullmatch(r"[eE][-+]?[0-9]+", suffix):
            return Decimal(number + suffix)
    except InvalidOperation:
        return None
    return None


_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}


def canonical_quantity(text: Any) -> str:
    """A quantity as resource.Quantity's String() prints it: "1000m" -> "1", "0.5" -> "500m",
    "1024Mi" -> "1Gi" (binary suffixes kept for whole values outside (-1024, 1024), as upstream)."""
    amount = parse_quantity(text)
    if amount is None:
        return str(text)
    match = _QUANTITY.fullmatch(text) if isinstance(text, str) else None
    suffix = match.group(2) if match else ""
    if suffix in _BINARY[1:] and amount == amount.to_integral_value() and abs(amount) >= 1024:
        number, power = int(amount), 0
        while number % 1024 == 0 and power < 6:
            number, power = number // 1024, power + 1
        return f"{number}{_BINARY[power]}"
    nanos = (amount * Decimal(10) ** 9).to_integral_value(rounding="ROUND_CEILING")
    number, exponent = int(nanos), -9
    while number and number % 1000 == 0 and exponent < 18:
        number, exponent = number // 1000, exponent + 3
    if not number:
        return "0"
    if suffix[:1] in ("e", "E"):
        return f"{number}e{exponent}" if exponent else str(number)
    return f"{number}{_DECIMAL[exponent]}"


def check_quantities(kind: str, spec: Any) -> None:
    """400 as kube's JSON decoder gives for a quantity it cannot parse (before any validation runs)."""
    for field in ("initContainers", "containers"):
        for c in _items(_map(spec).get(field)):
            resources = _map(_map(c).get("resources"))
            for part in ("limits", "requests"):
                for value in _map(resources.get(part)).values():
                    if parse_quantity(value) is None:
                        prefix = f'{kind} in version "v1" cannot be handled as a {kind}: '
                        raise errors.bad_request(prefix + _QUANTITY_MSG)


def resource_causes(resources: Any, path: str) -> list[FieldCause]:
    """Names (a standard container resource or a qualified one) and non-negative quantities; a
    request may not exceed its limit. Keys in sorted order (Go walks the map in random order)."""
    resources = _map(resources)
    limits, requests = _map(resources.get("limits")), _map(resources.get("requests"))
    out: list[FieldCause] = []
    for part, quantities in (("limits", limits), ("requests", requests)):
        for name in sorted(quantities):
            where, value = f"{path}.{part}[{name}]", quantities[name]
            standard = name in _CONTAINER_RESOURCES or name.startswith("hugepages-")
            if "/" not in name and not standard:
                out.append(cause(INVALID, where, "must be a standard resource for containers", name))
            amount = parse_quantity(value)
            if amount is not None and amount < 0:
                out.append(cause(INVALID, where, "must be greater than or equal to 0", canonical_quantity(value)))
            limit = parse_quantity(limits.get(name)) if part == "requests" and name in limits else None
            if amount is not None and limit is not None and amount > limit:
                detail = f"must be less than or equal to {name} limit of {canonical_quantity(limits[name])}"
                out.append(cause(INVALID, f"{path}.requests", detail, canonical_quantity(value)))
    return out


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _map(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
