"""Resource quantities and resource lists: parsing, arithmetic and fit checks.

A resource list is a plain ``Mapping[str, int]``: cpu in millicores, everything else (memory,
ephemeral-storage, pods, extended resources) in whole units, rounded up as Kubernetes rounds
them.  Plain dicts keep the filter hot path free of object overhead; this module is the one
place that knows the units.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation, Overflow

ResourceList = Mapping[str, int]

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"

MAX_AMOUNT = 2**63 - 1

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity (``"500m"``, ``"2Gi"``, ``"1e3"``)."""


def parse_quantity(value: object) -> Decimal:
    """Parse a Kubernetes quantity into an exact decimal: ``"1500m"`` -> 1.5, ``"1Ki"`` -> 1024."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"not a quantity: {value!r}")
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise QuantityError(f"not a quantity: {value!r}")
    number, suffix = match.groups()
    if suffix not in _SUFFIXES:
        raise QuantityError(f"unknown quantity suffix {suffix!r} in {value!r}")
    try:
        return Decimal(number) * _SUFFIXES[suffix]
    except (InvalidOperation, Overflow) as exc:
        raise QuantityError(f"not a quantity: {value!r}") from exc


def amount(name: str, value: object) -> int:
    """The integer amount of resource ``name``: millicores for cpu, rounded-up units otherwise.

    Example: ``amount("cpu", "250m")`` -> 250, ``amount("memory", "1.5Ki")`` -> 1536.
    """
    quantity = parse_quantity(value)
    if name == CPU:
        quantity *= 1000
    if quantity >= MAX_AMOUNT:  # Kubernetes caps quantities at the int64 maximum
        return MAX_AMOUNT
    return math.ceil(quantity)


def parse_list(raw: Mapping[str, object] | None) -> dict[str, int]:
    """Convert a raw ``{name: quantity}`` map (requests, limits, allocatable) to amounts."""
    if not raw:
        return {}
    return {name: amount(name, value) for name, value in raw.items()}


def add(total: dict[str, int], extra: ResourceList) -> None:
    """Add ``extra`` into ``total`` in place."""
    for name, value in extra.items():
        total[name] = total.get(name, 0) + value


def subtract(total: dict[str, int], extra: ResourceList) -> None:
    """Subtract ``extra`` from ``total`` in place, dropping names that reach zero."""
    for name, value in extra.items():
        left = total.get(name, 0) - value
        if left:
            total[name] = left
        else:
            total.pop(name, None)


def maximum(a: ResourceList, b: ResourceList) -> dict[str, int]:
    """Element-wise maximum of two resource lists."""
    out = dict(a)
    for name, value in b.items():
        if value > out.get(name, 0):
            out[name] = value
    return out


def total(lists: Iterable[ResourceList]) -> dict[str, int]:
    """The sum of several resource lists."""
    out: dict[str, int] = {}
    for item in lists:
        add(out, item)
    return out


def insufficient(
    request: ResourceList, *, allocatable: ResourceList, used: ResourceList
) -> list[str]:
    """Names of the requested resources that do not fit in ``allocatable - used``.

    Only resources the pod requests (with a non-zero amount) are checked, as kube-scheduler's
    NodeResourcesFit does.
    """
    short = []
    for name, want in request.items():
        if want and want > allocatable.get(name, 0) - used.get(name, 0):
            short.append(name)
    return short


def format_amount(name: str, value: int) -> str:
    """Render an amount for humans: ``cpu 1500`` -> ``"1500m"``, memory in Gi/Mi when exact."""
    if name == CPU:
        return str(value // 1000) if value % 1000 == 0 else f"{value}m"
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size and value % size == 0:
            return f"{value // size}{suffix}"
    return str(value)


def describe(resources: ResourceList) -> str:
    """``{cpu: 4, memory: 8Gi}`` — a resource list as it appears in messages."""
    inner = ", ".join(f"{n}: {format_amount(n, v)}" for n, v in sorted(resources.items()) if v)
    return "{" + inner + "}"
