"""Quantities as Kubernetes writes them, and the integer amounts the extender computes with."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction as F

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extender.core import resources

MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("1500m", Decimal("1.5")),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("1Ki", Decimal(1024)),
        ("1Mi", Decimal(2**20)),
        ("2Gi", Decimal(2 * 2**30)),
        ("1.5Gi", Decimal(3 * 2**29)),
        ("1Ti", Decimal(2**40)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("2G", Decimal(2 * 10**9)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("12e-3", Decimal("0.012")),
        ("1E", Decimal(10**18)),
        ("100n", Decimal("1e-7")),
        ("250u", Decimal("0.00025")),
        ("+2", Decimal(2)),
        (3, Decimal(3)),
        (0.25, Decimal("0.25")),
    ],
    ids=[
        "a plain integer",
        "millis",
        "millis above one",
        "a decimal fraction",
        "a fraction without leading zero",
        "kibi",
        "mebi",
        "gibi",
        "a fractional gibi",
        "tebi",
        "kilo (lower-case k)",
        "mega",
        "giga",
        "an exponent",
        "an upper-case exponent",
        "a negative exponent",
        "a bare E is exa, not an exponent",
        "nanos",
        "micros",
        "an explicit plus sign",
        "a JSON integer",
        "a JSON float",
    ],
)
def test_parse_quantity_reads_every_kubernetes_form(text: object, expected: Decimal) -> None:
    assert resources.parse_quantity(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "abc", "1.2.3", "1Kb", "1K", "1 Gi", "Gi", "--1", ".", "1ki", "nan", None, True, [1]],
    ids=[
        "empty",
        "letters",
        "two decimal points",
        "an unknown suffix",
        "upper-case K is not a suffix",
        "a space before the suffix",
        "a suffix alone",
        "a double sign",
        "a lone point",
        "lower-case ki",
        "not a number",
        "null",
        "a boolean",
        "a list",
    ],
)
def test_parse_quantity_rejects_what_is_not_a_quantity(text: object) -> None:
    with pytest.raises(resources.QuantityError):
        resources.parse_quantity(text)


def test_quantity_error_is_a_value_error_naming_the_input() -> None:
    with pytest.raises(ValueError, match="'lots'"):
        resources.parse_quantity("lots")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("cpu", "1", 1000),
        ("cpu", "250m", 250),
        ("cpu", "0.5", 500),
        ("cpu", "1.0001", 1001),
        ("cpu", "100n", 1),
        ("cpu", "0", 0),
        ("memory", "1Gi", 2**30),
        ("memory", "1.5Ki", 1536),
        ("memory", "1m", 1),
        ("memory", "1500m", 2),
        ("memory", "128974848", 128974848),
        ("memory", "129e6", 129000000),
        ("pods", "110", 110),
        ("nvidia.com/gpu", "2", 2),
        ("ephemeral-storage", "10G", 10 * 10**9),
    ],
    ids=[
        "one core is 1000 millicores",
        "millicores stay millicores",
        "half a core",
        "a sub-millicore fraction rounds up",
        "a few nanocores round up to one millicore",
        "zero",
        "memory in bytes",
        "fractional kibibytes become whole bytes",
        "a milli-byte rounds up to one byte",
        "1.5 bytes round up to two",
        "plain bytes",
        "bytes with an exponent",
        "a pod count",
        "an extended resource",
        "ephemeral storage in decimal units",
    ],
)
def test_amount_is_millicores_for_cpu_and_rounded_up_units_otherwise(
    name: str, text: str, expected: int
) -> None:
    assert resources.amount(name, text) == expected


def test_parse_list_converts_each_entry_and_treats_null_as_empty() -> None:
    assert resources.parse_list({"cpu": "2", "memory": "1Mi"}) == {"cpu": 2000, "memory": 2**20}
    assert resources.parse_list(None) == {}
    assert resources.parse_list({}) == {}


def test_add_subtract_maximum_total() -> None:
    held = {"cpu": 1000}
    resources.add(held, {"cpu": 500, "memory": 10})
    assert held == {"cpu": 1500, "memory": 10}
    resources.subtract(held, {"memory": 10})
    assert held == {"cpu": 1500}, "names that reach zero are dropped"
    assert resources.maximum({"cpu": 1, "memory": 9}, {"cpu": 3, "pods": 1}) == {
        "cpu": 3,
        "memory": 9,
        "pods": 1,
    }
    assert resources.total([{"cpu": 1}, {"cpu": 2, "pods": 1}, {}]) == {"cpu": 3, "pods": 1}


@pytest.mark.parametrize(
    ("request_", "allocatable", "used", "expected"),
    [
        ({"cpu": 1000}, {"cpu": 4000}, {"cpu": 3000}, []),
        ({"cpu": 1001}, {"cpu": 4000}, {"cpu": 3000}, ["cpu"]),
        ({"cpu": 100, "memory": 10}, {"cpu": 50, "memory": 5}, {}, ["cpu", "memory"]),
        ({"nvidia.com/gpu": 1}, {"cpu": 4000}, {}, ["nvidia.com/gpu"]),
        ({"nvidia.com/gpu": 0}, {"cpu": 4000}, {}, []),
        ({"cpu": 1}, {"cpu": 4000}, {"cpu": 4500}, ["cpu"]),
        ({}, {}, {}, []),
    ],
    ids=[
        "exactly the free amount fits",
        "one millicore more does not",
        "every short resource is named",
        "a resource the node lacks is short",
        "a zero request is not checked",
        "an overcommitted node has nothing free",
        "an empty request always fits",
    ],
)
def test_insufficient_names_the_requested_resources_that_do_not_fit(
    request_: dict[str, int], allocatable: dict[str, int], used: dict[str, int], expected: list
) -> None:
    assert resources.insufficient(request_, allocatable=allocatable, used=used) == expected


def test_describe_renders_amounts_for_humans() -> None:
    shown = resources.describe({"cpu": 1500, "memory": 8 * 2**30, "pods": 0, "nvidia.com/gpu": 2})
    assert shown == "{cpu: 1500m, memory: 8Gi, nvidia.com/gpu: 2}"
    assert resources.format_amount("cpu", 4000) == "4"
    assert resources.format_amount("memory", 3 * 2**20) == "3Mi"
    assert resources.format_amount("memory", 1000) == "1000"


def test_an_exponent_beyond_int32_is_a_quantity_error() -> None:
    # Kubernetes truncates such an exponent to 32 bits, so the text does not mean its number.
    for text in ("1e2147483648", "1e-2147483649", "1e99999999999999999999999"):
        with pytest.raises(resources.QuantityError, match="exponent out of range"):
            resources.amount("cpu", text)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("cpu", "1e1000000", MAX),
        ("memory", "1e2147483647", MAX),
        ("memory", "9" * 5000, MAX),
        ("memory", "8Ei", MAX),
        ("cpu", "1e-2147483648", 1),
        ("memory", "0." + "0" * 100_000 + "1", 1),
        ("memory", "-9e999999", -MAX),
        ("cpu", "-100", -100_000),
        ("memory", "-1.5", -2),
        ("memory", "-1m", -1),
        ("memory", "-0", 0),
        ("memory", "0.0000000001Ei", 115_292_151),
        ("cpu", "0.0000000001Ei", 115_292_150_461),
    ],
    ids=[
        "a huge exponent is capped at the int64 maximum",
        "the largest exponent is capped",
        "five thousand digits are capped (more than int() reads)",
        "8Ei is over int64 and capped",
        "the smallest exponent rounds up to one",
        "a fraction of a hundred thousand digits rounds up to one",
        "a huge negative quantity is capped at minus the maximum",
        "a negative quantity stays negative",
        "negative amounts round away from zero, as Kubernetes' Value does",
        "a negative milli-byte is -1, not 0",
        "minus zero is zero",
        "a binary suffix scales before rounding",
        "the same in millicores",
    ],
)
def test_amounts_of_extreme_quantities_are_capped_and_rounded_away_from_zero(
    name: str, text: str, expected: int
) -> None:
    assert resources.amount(name, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.", Decimal(1)),
        ("+.5e-3", Decimal("0.0005")),
        ("1E+3", Decimal(1000)),
        ("007", Decimal(7)),
        (" 2Gi\n", Decimal(2 * 2**30)),
        ("1e0000000000000000000003", Decimal(1000)),
    ],
    ids=[
        "a trailing point",
        "a signed fraction with an exponent",
        "an exponent with a plus sign",
        "leading zeros",
        "surrounding white space, as Kubernetes' JSON decoding trims it",
        "an exponent with many leading zeros",
    ],
)
def test_parse_quantity_accepts_the_less_common_kubernetes_forms(
    text: str, expected: Decimal
) -> None:
    assert resources.parse_quantity(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "1e",
        "1e+",
        "1E-",
        "1Ki5",
        "1m5",
        "1ee5",
        "1e5x",
        "1 ",
        "1\u00a0Gi",
        "\uff11",
        "1e1.5",
        "+-1",
    ],
    ids=[
        "an exponent without digits",
        "an exponent with only a sign",
        "an upper-case exponent with only a sign",
        "digits after a binary suffix",
        "digits after a decimal suffix",
        "a doubled exponent mark",
        "letters after an exponent",
        "an internal space",
        "a non-breaking space",
        "a full-width digit",
        "a fractional exponent",
        "two signs",
    ],
)
def test_parse_quantity_rejects_what_kubernetes_rejects(text: str) -> None:
    # "1 " is refused because the space is inside the quantity, not around it: stripped here
    # as JSON decoding strips it, "1 " would be accepted.  So test the core grammar directly.
    if text == "1 ":
        text = "1 x"
    with pytest.raises(resources.QuantityError):
        resources.amount("memory", text)


_NUMBERS = st.tuples(
    st.sampled_from(["", "+", "-"]),
    st.text("0123456789", max_size=25),
    st.one_of(st.none(), st.text("0123456789", max_size=25)),
).filter(lambda parts: bool(parts[1] or parts[2]))
_SUFFIXES = st.one_of(
    st.sampled_from(["", "n", "u", "m", "k", "M", "G", "T", "P", "E"]),
    st.sampled_from(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]),
    st.builds(
        lambda e, n: f"{e}{n}", st.sampled_from(["e", "E", "e+", "e-", "E-"]), st.integers(0, 40)
    ),
)
_SCALES = {"n": F(1, 10**9), "u": F(1, 10**6), "m": F(1, 1000), "": F(1)}
_SCALES.update({s: F(10**e) for s, e in zip("kMGTPE", range(3, 19, 3), strict=True)})
_SCALES.update({s + "i": F(2**e) for s, e in zip("KMGTPE", range(10, 61, 10), strict=True)})


def _reference(sign: str, whole: str, fraction: str | None, suffix: str) -> F:
    number = F(int(whole + (fraction or "") or "0"), 10 ** len(fraction or ""))
    scale = _SCALES[suffix] if suffix in _SCALES else F(10) ** int(suffix[1:])
    return -number * scale if sign == "-" else number * scale


@given(_NUMBERS, _SUFFIXES, st.sampled_from(["cpu", "memory"]))
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_amount_equals_exact_arithmetic(
    number: tuple[str, str, str | None], suffix: str, name: str
) -> None:
    sign, whole, fraction = number
    text = f"{sign}{whole}" + ("" if fraction is None else f".{fraction}") + suffix
    value = _reference(sign, whole, fraction, suffix)
    assert resources.parse_quantity(text) == value  # Decimal compares exactly with Fraction
    scaled = value * (1000 if name == "cpu" else 1)
    rounded = min(math.ceil(abs(scaled)), MAX)
    assert resources.amount(name, text) == (-rounded if scaled < 0 else rounded)


@given(st.one_of(st.text(max_size=60), st.text("0123456789.+-eEiKMGTPnumk ", max_size=60)))
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_any_text_is_an_amount_in_int64_range_or_a_quantity_error(text: str) -> None:
    try:
        value = resources.amount("memory", text)
    except resources.QuantityError:
        return
    assert -MAX <= value <= MAX
