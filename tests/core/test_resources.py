"""Quantities as Kubernetes writes them, and the integer amounts the extender computes with."""

from __future__ import annotations

from decimal import Decimal

import pytest

from extender.core import resources


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


def test_an_out_of_range_exponent_is_a_quantity_error() -> None:
    with pytest.raises(resources.QuantityError):
        resources.amount("cpu", "1e1000000")


def test_quantities_are_capped_like_kubernetes_caps_them() -> None:
    try:
        value = resources.amount("memory", "1e30")
    except resources.QuantityError:
        return  # rejecting is as good as capping
    assert value <= 2**63 - 1
