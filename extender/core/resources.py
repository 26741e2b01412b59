"""Resource quantities and resource lists: parsing, arithmetic and fit checks.

A resource list is a plain ``Mapping[str, int]``: cpu in millicores, everything else (memory,
ephemeral-storage, pods, extended resources) in whole units, rounded away from zero as
Kubernetes rounds them.  Plain dicts keep the filter hot path free of object overhead; this
module is the one place that knows the units.
"""

from __future__ import annotations

import decimal
import functools
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import NamedTuple

ResourceList = Mapping[str, int]

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
EPHEMERAL_STORAGE = "ephemeral-storage"

MAX_AMOUNT = 2**63 - 1

# Kubernetes' quantity grammar (apimachinery ``resource.Quantity``): a signed decimal number
# (``1``, ``1.5``, ``.5``, ``1.``), then one suffix: binary (``Ki`` .. ``Ei``), decimal (``n``,
# ``u``, ``m``, ``k``, ``M``, ``G``, ``T``, ``P``, ``E``) or an exponent (``e3``, ``E-2``).
# ``E`` alone is exa; ``E`` with digits is an exponent, so the exponent is tried first.
# Possessive quantifiers: a mismatch fails at once instead of backtracking through every digit
# of a long number (a megabyte of digits costs a couple of milliseconds, not a tenth of a second).
_QUANTITY = re.compile(
    r"([+-]?+)([0-9]*+)(?:\.([0-9]*+))?+(?:[eE]([+-]?+[0-9]++)|([KMGTPE]i|[numkMGTPE]))?+"
)
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_INT32 = 2**31
_INT64_DIGITS = 19
# Fraction digits kept when an amount is rounded: at least the largest binary exponent (60),
# so that cutting off the rest can never hide an integer boundary (see ``_ceil_scaled``).
_KEPT_FRACTION_DIGITS = 64
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[decimal.Overflow]
)
_SHOWN = 40


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity (``"500m"``, ``"2Gi"``, ``"1e3"``)."""


def shown(value: object) -> str:
    """``repr(value)``, shortened for messages: a quantity may be a megabyte of digits."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 5]}...{text[-4:]}"


class _Parsed(NamedTuple):
    """``(-1)**negative * int(digits) * 10**exp10 * 2**exp2``; ``digits`` has no leading or
    trailing zeros (empty for zero)."""

    negative: bool
    digits: str
    exp10: int
    exp2: int


def _parse(value: object) -> _Parsed:
    """Read a quantity as Kubernetes does, in time linear in its length.

    A JSON number counts as its text, as Kubernetes reads it.  Two differences, both for text
    the API server never sends (it writes quantities back in canonical form, e.g. ``"1500m"``):
    a number needs a digit (Kubernetes reads ``"."``, ``"+"`` and ``"Gi"`` as zero), and an
    exponent must fit an int32 (Kubernetes truncates a larger int64 exponent to 32 bits, so
    ``"1e4294967296"`` would be 1).
    """
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        try:
            text = str(value)
        except ValueError:  # more than sys.get_int_max_str_digits() digits (YAML, not JSON)
            raise QuantityError("not a quantity: an integer of thousands of digits") from None
    elif isinstance(value, float):
        text = repr(value)  # finite: JSON has no NaN or infinity
    elif isinstance(value, str):
        text = value.strip(" \t\n\r\v\f")
    else:
        raise QuantityError(f"not a quantity: {shown(value)}")
    match = _QUANTITY.fullmatch(text)
    if match is None or not (match[2] or match[3]):
        raise QuantityError(
            f"not a quantity: {shown(value)} (a number with an optional suffix such as "
            '"500m", "2Gi" or "1e3")'
        )
    sign, whole, fraction, exponent, suffix = match.groups()
    fraction = fraction or ""
    exp10, exp2 = -len(fraction), 0
    if exponent is not None:
        exp10 += _exponent(exponent, value)
    elif suffix in _BINARY_SUFFIXES:
        exp2 = _BINARY_SUFFIXES[suffix]
    elif suffix is not None:
        exp10 += _DECIMAL_SUFFIXES[suffix]
    digits = (whole + fraction).lstrip("0")
    trimmed = digits.rstrip("0")
    return _Parsed(sign == "-" and bool(trimmed), trimmed, exp10 + len(digits) - len(trimmed), exp2)


def _exponent(text: str, value: object) -> int:
    """A quantity's exponent (``"-3"``, ``"+007"``), which must fit an int32."""
    magnitude = text.lstrip("+-").lstrip("0") or "0"
    if len(magnitude) <= len(str(_INT32)):
        exponent = -int(magnitude) if text[0] == "-" else int(magnitude)
        if -_INT32 <= exponent < _INT32:
            return exponent
    raise QuantityError(f"exponent out of range in {shown(value)}")


def parse_quantity(value: object) -> Decimal:
    """Parse a Kubernetes quantity into an exact decimal: ``"1500m"`` -> 1.5, ``"1Ki"`` -> 1024."""
    parsed = _parse(value)
    if not parsed.digits:
        return Decimal(0)
    number = Decimal(f"{'-' if parsed.negative else ''}{parsed.digits}E{parsed.exp10}")
    return _EXACT.multiply(number, 2**parsed.exp2) if parsed.exp2 else number


def _ceil_scaled(digits: str, exp10: int, factor: int) -> int:
    """``ceil(int(digits) * 10**exp10 * factor)`` for ``factor = 2**b`` with ``b <= 60``, where
    ``digits`` ends in a non-zero digit and the result is known to be below about ``1e20``.

    Fraction digits past the 64th are cut off.  With ``K`` the number the kept digits spell
    (so the exact value times ``10**64`` lies strictly between ``K * factor`` and
    ``(K + 1) * factor``: the cut-off part is not zero), the answer is
    ``K * factor // 10**64 + 1``: every multiple of ``10**64`` is a multiple of ``factor``, so
    none falls strictly between those two consecutive multiples of ``factor``."""
    if exp10 >= 0:
        return int(digits) * _power_of_ten(exp10) * factor
    cut = -exp10 - _KEPT_FRACTION_DIGITS
    if cut > 0:
        kept = digits[:-cut] or "0"
        return int(kept) * factor // _power_of_ten(_KEPT_FRACTION_DIGITS) + 1
    return -(-int(digits) * factor // _power_of_ten(-exp10))


def _power_of_ten(exponent: int) -> int:
    return int(10**exponent)


def amount(name: str, value: object) -> int:
    """The integer amount of resource ``name``: millicores for cpu, whole units otherwise,
    rounded away from zero as Kubernetes' ``Value``/``MilliValue`` round, and capped at the
    int64 range.  Cheap for any input: no number is ever built larger than about 10**85.

    Example: ``amount("cpu", "250m")`` -> 250, ``amount("memory", "1.5Ki")`` -> 1536,
    ``amount("memory", "-1m")`` -> -1.
    """
    if type(value) is str and len(value) <= _CACHED_LENGTH:
        return _cached_amount(name == CPU, value)
    return _amount(name == CPU, value)


# Pods of a cluster repeat a handful of quantities ("500m", "1Gi"): a short one is read once.
_CACHED_LENGTH = 24


@functools.lru_cache(maxsize=1024)
def _cached_amount(cpu: bool, text: str) -> int:
    return _amount(cpu, text)


def _amount(cpu: bool, value: object) -> int:
    parsed = _parse(value)
    if not parsed.digits:
        return 0
    exp10 = parsed.exp10 + (3 if cpu else 0)
    # The value is at least 10**magnitude * 2**exp2, and 2**10 > 10**3.
    magnitude = len(parsed.digits) - 1 + exp10
    if magnitude + parsed.exp2 * 3 // 10 >= _INT64_DIGITS:
        result = MAX_AMOUNT
    else:
        result = min(_ceil_scaled(parsed.digits, exp10, 2**parsed.exp2), MAX_AMOUNT)
    return -result if parsed.negative else result


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
