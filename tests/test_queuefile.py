"""The queues file adapter under bad changes: whatever lands in the file, loading it raises
``ConfigError`` in one line naming the file (and the field), a poll never raises, the last good
configuration stays in force and the rejection is counted."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from extender import queuefile
from extender.core import kueue
from tests import builders

# Not builders.QUEUE_SETUP: bytes, v1beta2, and a Configuration, whose waitForPodsReady fields
# the bad files below break; BAD_FILES and QUOTA name this file's objects and fields.
GOOD = b"""\
apiVersion: kueue.x-k8s.io/v1beta2
kind: ResourceFlavor
metadata: {name: default-flavor}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: team-a}
spec:
  namespaceSelector: {}
  resourceGroups:
  - coveredResources: [cpu]
    flavors:
    - name: default-flavor
      resources:
      - {name: cpu, nominalQuota: 9}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {namespace: default, name: user-queue}
spec: {clusterQueue: team-a}
---
apiVersion: config.kueue.x-k8s.io/v1beta1
kind: Configuration
waitForPodsReady:
  timeout: 5m
  requeuingStrategy: {backoffLimitCount: 5}
"""
QUOTA = "ClusterQueue team-a: spec.resourceGroups[0].flavors[0].resources[0].nominalQuota"


def _nested_block(levels: int) -> bytes:
    return b"".join(b" " * i + b"a:\n" for i in range(levels)) + b" " * levels + b"x\n"


def _alias_bomb() -> bytes:
    """Nine references to nine references ... eight levels down: 43 million values in 300 bytes."""
    lines = [b"a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 9).encode()
        lines.append(f"a{i}: &a{i} [".encode() + refs + b"]")
    return b"\n".join(lines) + b"\n"


BAD_FILES = [
    pytest.param(GOOD + b"# caf\xe9\n", "not valid YAML: byte", id="a byte that is not UTF-8"),
    pytest.param(
        GOOD.replace(b"team-a}", b"team-\xff}", 1), "not valid YAML: byte", id="non-UTF-8 in a name"
    ),
    pytest.param(b"[" * 100_000, "not valid YAML: line 1", id="deeply nested flow lists"),
    pytest.param(
        _nested_block(2000),
        "not valid YAML: line 65, column 65: nested deeper than 64 levels",
        id="deeply nested block mappings",
    ),
    pytest.param(_alias_bomb(), "expands to more than 2000000 values", id="aliases that explode"),
    pytest.param(b"a: 0x_\n", "not valid YAML: line 1, column 4: cannot read the value", id="0x_"),
    pytest.param(
        b"a: !!timestamp 2001-13-45\n",
        "line 1, column 4: cannot read the value: month",
        id="a timestamp that is no date",
    ),
    pytest.param(
        b"a: " + b"1" * 5000 + b"\n",
        "line 1, column 4: cannot read the value: Exceeds",
        id="an integer too long to convert",
    ),
    pytest.param(
        GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: .nan}"),
        f"{QUOTA}: not a valid quantity: '.nan'",
        id="a NaN quota",
    ),
    pytest.param(
        GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: .inf}"),
        f"{QUOTA}: not a valid quantity: '.inf'",
        id="an infinite quota",
    ),
    pytest.param(
        GOOD.replace(b"backoffLimitCount: 5", b"backoffLimitCount: .inf"),
        "Configuration: waitForPodsReady.requeuingStrategy.backoffLimitCount: must be an integer",
        id="an infinite backoffLimitCount",
    ),
    pytest.param(
        GOOD.replace(b"backoffLimitCount: 5", b"backoffLimitCount: .nan"),
        "backoffLimitCount: must be an integer, got '.nan'",
        id="a NaN backoffLimitCount",
    ),
    pytest.param(
        GOOD.replace(b"timeout: 5m", b"timeout: .inf"),
        "Configuration: waitForPodsReady.timeout: '.inf' is not a duration",
        id="an infinite timeout",
    ),
    pytest.param(
        GOOD.replace(b"namespace: default,", b"namespace: [default],"),
        "LocalQueue user-queue: metadata.namespace: must be a string",
        id="a list for a namespace",
    ),
    pytest.param(b"- a\n- b\n", "document 1: must be an object, got list", id="a list document"),
    pytest.param(
        b"# nothing but comments\n" * (queuefile.MAX_BYTES // 23 + 1),
        f"more than the {queuefile.MAX_BYTES} a queues file may have",
        id="a huge file",
    ),
]


def _rejected() -> float:
    return (
        REGISTRY.get_sample_value("muster_queue_config_loads_total", {"result": "rejected"}) or 0.0
    )


class Watched:
    """A queues file in force, with every configuration and rejection it passed on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.applied: list[kueue.QueueConfig] = []
        self.told: list[str] = []
        self.file = queuefile.QueueFile(path, self.applied.append, rejected=self.told.append)
        self._mtime = 1_000_000_000

    def write(self, data: bytes) -> None:
        """Change the file so a poll sees it changed, even within one mtime tick."""
        self.path.write_bytes(data)
        self._mtime += 1_000_000_000
        os.utime(self.path, ns=(self._mtime, self._mtime))

    @property
    def quota(self) -> int:
        quota = self.applied[-1].cluster_queues["team-a"].quota("default-flavor", "cpu")
        assert quota is not None
        return quota.nominal


@pytest.fixture
def watched(tmp_path: Path) -> Watched:
    w = Watched(tmp_path / "queues.yaml")
    w.write(GOOD)
    w.file.load_now()
    assert w.quota == 9000
    return w


def _one_line_naming(message: str, path: Path) -> None:
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert "Traceback" not in message


@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_a_bad_file_at_start_is_one_config_error(tmp_path: Path, data: bytes, message: str):
    path = tmp_path / "queues.yaml"
    path.write_bytes(data)
    with pytest.raises(kueue.ConfigError) as caught:
        queuefile.QueueFile(path, lambda config: None).load_now()
    _one_line_naming(str(caught.value), path)
    assert message in str(caught.value)


@pytest.mark.parametrize(("data", "message"), BAD_FILES)
def test_a_bad_change_is_rejected_and_the_last_good_configuration_stays(
    watched: Watched, data: bytes, message: str
):
    before = _rejected()
    watched.write(data)
    assert watched.file.check() is False
    assert len(watched.applied) == 1
    _one_line_naming(watched.file.error, watched.path)
    assert message in watched.file.error
    assert watched.told == [watched.file.error]
    assert _rejected() == before + 1
    watched.write(GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: 12}"))
    assert watched.file.check() is True
    assert watched.quota == 12000
    assert (watched.file.error, watched.told[-1]) == ("", "")


def test_a_huge_exponent_quota_is_loaded_capped_or_rejected(watched: Watched):
    """Whatever the quantity parser makes of ``1e999999`` (see tests/core/test_kueue.py)."""
    watched.write(GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: 1e999999}"))
    if watched.file.check():
        assert watched.quota > 9000
    else:
        assert f"{QUOTA}: " in watched.file.error
        assert watched.quota == 9000


def test_a_directory_in_place_of_the_file_is_rejected(watched: Watched):
    watched.path.unlink()
    watched.path.mkdir()
    assert watched.file.check() is False
    assert watched.file.error == f"{watched.path}: cannot read: it is a directory"
    assert watched.quota == 9000
    with pytest.raises(kueue.ConfigError, match="it is a directory"):
        queuefile.QueueFile(watched.path, lambda config: None).load_now()


def test_a_removed_file_is_rejected_once(watched: Watched):
    watched.path.unlink()
    assert watched.file.check() is False
    assert "cannot read" in watched.file.error
    assert watched.file.check() is False  # unchanged since: not read, not counted again
    assert len(watched.told) == 1


def test_an_empty_file_is_a_configuration_without_queues(watched: Watched):
    watched.write(b"")
    assert watched.file.check() is True
    assert watched.applied[-1].cluster_queues == {}


@pytest.mark.parametrize(
    "seen", [b"", GOOD[: len(GOOD) // 2]], ids=["truncated to empty", "half written"]
)
def test_a_file_rewritten_while_it_is_read_is_read_again_at_the_next_poll(
    watched: Watched, monkeypatch: pytest.MonkeyPatch, seen: bytes
):
    """A writer that truncates the file and writes it again in place, caught between the
    loader's look at the file and its read: the read is refused, not taken for the new file."""
    new = GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: 12}")
    watched.write(new)
    fstat = os.fstat

    def rewritten_after_the_look(fd: int) -> os.stat_result:
        info = fstat(fd)
        watched.path.write_bytes(seen)  # the writer has got this far when the read happens
        return info

    monkeypatch.setattr(os, "fstat", rewritten_after_the_look)
    assert watched.file.check() is False
    monkeypatch.undo()
    assert "changed while it was read" in watched.file.error
    assert watched.quota == 9000
    watched.write(new)  # the writer finishes
    assert watched.file.check() is True
    assert watched.quota == 12000


def test_an_unexpected_exception_while_parsing_is_a_rejected_change(
    watched: Watched, monkeypatch: pytest.MonkeyPatch
):
    def broken(documents: object) -> kueue.QueueConfig:
        raise KeyError("a case the parser missed")

    monkeypatch.setattr(kueue, "parse", broken)
    before = _rejected()
    watched.write(GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: 12}"))
    assert watched.file.check() is False
    _one_line_naming(watched.file.error, watched.path)
    assert "KeyError" in watched.file.error
    assert _rejected() == before + 1
    assert watched.quota == 9000
    with pytest.raises(kueue.ConfigError, match="KeyError"):
        queuefile.QueueFile(watched.path, lambda config: None).load_now()


def test_a_configuration_that_cannot_be_put_in_force_is_a_rejected_change(watched: Watched):
    def refuse(config: kueue.QueueConfig) -> None:
        raise RuntimeError("no")

    watched.file.apply = refuse
    watched.write(GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: 12}"))
    assert watched.file.check() is False
    assert watched.file.error == f"{watched.path}: RuntimeError: no"


async def test_the_watch_keeps_polling_through_bad_changes(watched: Watched):
    watched.file.interval = 0
    task = asyncio.create_task(watched.file.watch())
    for data in (b"[" * 100_000, _nested_block(2000), b"a: \xff\n"):
        watched.write(data)
        watched.file.error = ""
        for _ in range(100):  # event-loop turns, not time: the poll sleeps 0 s
            await asyncio.sleep(0)
            if watched.file.error:
                break
        assert watched.file.error
        assert not task.done()
    watched.write(GOOD.replace(b"nominalQuota: 9}", b"nominalQuota: 12}"))
    for _ in range(100):
        await asyncio.sleep(0)
        if len(watched.applied) == 2:
            break
    assert watched.quota == 12000
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- properties: any file loads or is one ConfigError; a poll never raises -------------------


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """Mutated Kueue objects as YAML, sometimes with bytes inserted, removed or overwritten."""
    documents = draw(builders.mutated_kueue_documents())
    try:
        data = yaml.safe_dump_all(documents, allow_unicode=draw(st.booleans())).encode()
    except (yaml.YAMLError, ValueError):  # e.g. a key YAML cannot write; not a file case
        reject()
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 8))
        data = data[:at] + draw(st.binary(max_size=8)) + data[at + cut :]
    return data


files = st.one_of(mutated_files(), st.binary(max_size=300))


def _not_a_caught_bug(message: str, path: Path) -> None:
    """One line naming the file, from a check that knew the case (not load()'s catch-all)."""
    _one_line_naming(message, path)
    assert ": cannot load (" not in message


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files)
def test_any_file_loads_or_raises_one_config_error(tmp_path_factory, data: bytes):
    path = tmp_path_factory.mktemp("load") / "queues.yaml"
    path.write_bytes(data)
    try:
        queuefile.load(path)
    except kueue.ConfigError as exc:
        _not_a_caught_bug(str(exc), path)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files)
def test_a_poll_never_raises_and_keeps_the_last_good_configuration(tmp_path_factory, data: bytes):
    watched = Watched(tmp_path_factory.mktemp("check") / "queues.yaml")
    watched.write(GOOD)
    watched.file.load_now()
    watched.write(data)
    if watched.file.check():
        assert len(watched.applied) == 2 and watched.file.error == ""
    else:
        assert len(watched.applied) == 1 and watched.quota == 9000
        _not_a_caught_bug(watched.file.error, watched.path)
