"""The reflector replays recorded list and watch streams into the cluster view.

Streams live in ``streams/``: ``*-list.json`` are list responses, ``*.jsonl`` are watch
streams, one event per line.  A line ``{"raise": ..., "message": ...}`` makes the fake
watcher raise that exception at that point, as a dropped connection does.  The reflector is
driven directly in the test's thread; it hands changes to the loop with
``call_soon_threadsafe``, so ``settle()`` lets the loop run them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from extender.core import cluster, model, objects
from extender.kube import watching
from tests.fakes import STREAMS, FakeLister, FakeResponse, FakeWatcher, load_list


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def pod_reflector(
    state: cluster.ClusterState, lister: Any, watcher: Any, **kwargs: Any
) -> watching.Reflector[model.Pod]:
    return watching.Reflector(
        resource="pods",
        lister=lister,
        watcher=watcher,
        convert=objects.to_pod,
        handlers=watching.Handlers(
            replace=state.replace_pods,
            upsert=state.upsert_pod,
            delete=lambda pod: state.delete_pod(pod.uid),
        ),
        loop=asyncio.get_running_loop(),
        **{"jitter": lambda delay: delay, **kwargs},
    )


def node_reflector(
    state: cluster.ClusterState, lister: Any, watcher: Any
) -> watching.Reflector[model.Node]:
    return watching.Reflector(
        resource="nodes",
        lister=lister,
        watcher=watcher,
        convert=objects.to_node,
        handlers=watching.Handlers(
            replace=state.replace_nodes,
            upsert=state.upsert_node,
            delete=lambda node: state.delete_node(node.name),
        ),
        loop=asyncio.get_running_loop(),
    )


@pytest.fixture
async def view() -> cluster.ClusterState:
    """The view after the recorded node list (node1..node3)."""
    state = cluster.ClusterState()
    reflector = node_reflector(state, FakeLister("nodes-list.json"), FakeWatcher())
    reflector.relist()
    await settle()
    return state


def used(state: cluster.ClusterState, name: str) -> dict[str, int]:
    return dict(state.nodes[name].used)


# -- nodes ----------------------------------------------------------------------------------


async def test_the_node_list_fills_the_view_and_skips_malformed_nodes() -> None:
    state = cluster.ClusterState()
    reflector = node_reflector(state, FakeLister("nodes-list.json"), FakeWatcher())
    reflector.relist()
    assert not reflector.listed.is_set(), "changes are applied on the loop, not in the thread"
    await settle()
    assert reflector.listed.is_set()
    assert sorted(state.nodes) == ["node1", "node2", "node3"]
    assert state.nodes["node3"].node.taints == (model.Taint("dedicated", "db", "NoSchedule"),)
    assert reflector.version == "100"


async def test_node_events_add_change_and_delete(view: cluster.ClusterState) -> None:
    watcher = FakeWatcher("nodes-watch.jsonl")
    reflector = node_reflector(view, FakeLister("nodes-list.json"), watcher)
    reflector.version = "100"
    generation = view.nodes["node1"].generation
    reflector.step()
    await settle()
    assert watcher.versions == ["100"]
    assert sorted(view.nodes) == ["node1", "node3", "node4"]
    assert view.nodes["node4"].node.allocatable["cpu"] == 8000
    assert view.nodes["node1"].node.labels["topology.kubernetes.io/zone"] == "zone-a"
    assert view.nodes["node1"].generation > generation
    # the malformed MODIFIED of node3 was skipped: its old taint is still there
    assert view.nodes["node3"].node.taints == (model.Taint("dedicated", "db", "NoSchedule"),)
    assert reflector.version == "110", "the bookmark's version is the last one seen"


# -- pods -----------------------------------------------------------------------------------


async def test_the_pod_list_accounts_bound_pods(view: cluster.ClusterState) -> None:
    reflector = pod_reflector(view, FakeLister("pods-list.json"), FakeWatcher())
    reflector.relist()
    await settle()
    assert sorted(view.pods) == ["job-1-uid", "web-1-uid", "web-2-uid"]
    assert used(view, "node1") == {"cpu": 3000, "memory": 2**30, "pods": 2}
    assert used(view, "node2") == {"cpu": 1000, "memory": 2**30, "pods": 1}


async def test_pod_events_update_the_view(view: cluster.ClusterState) -> None:
    reflector = pod_reflector(view, FakeLister("pods-list.json"), FakeWatcher("pods-watch.jsonl"))
    events_before = (
        REGISTRY.get_sample_value(
            "muster_watch_events_total", {"resource": "pods", "type": "MODIFIED"}
        )
        or 0.0
    )
    reflector.step()
    await settle()
    # api-1 was added pending, then bound to node1; job-1 succeeded; web-2 was deleted;
    # the malformed bad-1 was skipped.
    assert sorted(view.pods) == ["api-1-uid", "job-1-uid", "web-1-uid"]
    assert view.pods["api-1-uid"].node_name == "node1"
    assert used(view, "node1") == {"cpu": 1500, "memory": 2**30 + 256 * 2**20, "pods": 2}
    assert used(view, "node2") == {}
    assert reflector.version == "250"
    events_after = REGISTRY.get_sample_value(
        "muster_watch_events_total", {"resource": "pods", "type": "MODIFIED"}
    )
    assert events_after == events_before + 2


async def test_the_watch_resumes_from_the_last_version_without_relisting(
    view: cluster.ClusterState,
) -> None:
    lister = FakeLister("pods-list.json")
    watcher = FakeWatcher("pods-watch.jsonl", "pods-watch.jsonl")
    reflector = pod_reflector(view, lister, watcher)
    reflector.step()
    reflector.step()
    await settle()
    assert lister.calls == 1
    assert watcher.versions == ["200", "250"]


async def test_a_410_raises_expired_after_applying_the_events_before_it(
    view: cluster.ClusterState,
) -> None:
    reflector = pod_reflector(view, FakeLister("pods-list.json"), FakeWatcher("pods-expired.jsonl"))
    with pytest.raises(watching.Expired, match="too old resource version"):
        reflector.step()
    await settle()
    assert "late-1-uid" in view.pods and "never-1-uid" not in view.pods
    assert used(view, "node3") == {"cpu": 1000, "pods": 1}


async def test_another_watch_error_raises(view: cluster.ClusterState) -> None:
    reflector = pod_reflector(
        view, FakeLister("pods-list.json"), FakeWatcher("pods-internal-error.jsonl")
    )
    with pytest.raises(RuntimeError, match="etcdserver: request timed out"):
        reflector.step()


async def test_a_stream_that_breaks_keeps_what_came_before(view: cluster.ClusterState) -> None:
    reflector = pod_reflector(view, FakeLister("pods-list.json"), FakeWatcher("pods-broken.jsonl"))
    with pytest.raises(ConnectionResetError):
        reflector.step()
    await settle()
    assert "api-2-uid" in view.pods and "api-3-uid" not in view.pods
    assert reflector.version == "401"


async def test_a_relist_keeps_a_pod_being_bound(view: cluster.ClusterState) -> None:
    reflector = pod_reflector(view, FakeLister("pods-list.json"), FakeWatcher())
    reflector.relist()
    await settle()
    pending = objects.to_pod(
        json.loads((STREAMS / "pods-watch.jsonl").read_text().split("\n")[0])["object"]
    )
    view.assume(pending, "node2")
    reflector.relist()
    await settle()
    assert view.bound_node("api-1-uid") == "node2"
    assert used(view, "node2")["cpu"] == 1500


# -- run: expiry, errors and backoff --------------------------------------------------------


async def test_run_relists_after_a_410(view: cluster.ClusterState) -> None:
    lister = FakeLister("pods-list.json")
    sleeps: list[float] = []
    reflector = pod_reflector(view, lister, FakeWatcher(), sleep=sleeps.append)
    reflector.watcher = FakeWatcher("pods-expired.jsonl", stop=reflector.stopped)
    before = (
        REGISTRY.get_sample_value(
            "muster_watch_restarts_total", {"resource": "pods", "reason": "expired"}
        )
        or 0.0
    )
    reflector.run()
    await settle()
    assert lister.calls == 2, "listed, expired, listed again"
    assert reflector.watcher.versions == ["200", "200"]
    assert sleeps == [], "an expiry relists at once"
    assert (
        REGISTRY.get_sample_value(
            "muster_watch_restarts_total", {"resource": "pods", "reason": "expired"}
        )
        == before + 1
    )
    # the relist replaced the view: late-1 (seen only in the expired stream) is gone
    assert "late-1-uid" not in view.pods
    assert used(view, "node3") == {}


async def test_run_backs_off_on_errors_and_resets_after_a_good_stream(
    view: cluster.ClusterState,
) -> None:
    lister = FakeLister("pods-list.json")
    sleeps: list[float] = []
    reflector = pod_reflector(view, lister, FakeWatcher(), sleep=sleeps.append)
    reflector.watcher = FakeWatcher(
        ConnectionResetError("reset"),
        OSError("no route to host"),
        "pods-broken.jsonl",
        "pods-watch.jsonl",
        TimeoutError("read timed out"),
        stop=reflector.stopped,
    )
    reflector.run()
    await settle()
    assert sleeps == [0.5, 1.0, 2.0, 0.5]
    assert lister.calls == 1, "errors other than 410 resume from the last version"
    assert reflector.watcher.versions == ["200", "200", "200", "401", "250", "250"]


async def test_the_backoff_is_capped() -> None:
    state = cluster.ClusterState()
    sleeps: list[float] = []
    reflector = pod_reflector(
        state, FakeLister("pods-list.json"), FakeWatcher(), sleep=sleeps.append
    )
    reflector.watcher = FakeWatcher(*[OSError("down")] * 9, stop=reflector.stopped)
    reflector.run()
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0]


async def test_run_returns_quietly_when_stopped_during_a_failure() -> None:
    state = cluster.ClusterState()
    sleeps: list[float] = []
    reflector = pod_reflector(
        state, FakeLister("pods-list.json"), FakeWatcher(), sleep=sleeps.append
    )

    def watcher(version: str) -> Iterator[dict[str, Any]]:
        reflector.stopped.set()
        raise ConnectionResetError("closed while stopping")

    reflector.watcher = watcher
    reflector.run()
    assert sleeps == []


async def test_a_failing_list_is_retried_with_a_relist() -> None:
    state = cluster.ClusterState()
    calls: list[str] = []
    sleeps: list[float] = []

    def lister() -> tuple[list[dict[str, Any]], str]:
        calls.append("list")
        if len(calls) == 1:
            raise ConnectionRefusedError("apiserver down")
        return load_list("pods-list.json")

    reflector = pod_reflector(state, lister, FakeWatcher(), sleep=sleeps.append)
    reflector.watcher = FakeWatcher(stop=reflector.stopped)
    reflector.run()
    await settle()
    assert calls == ["list", "list"] and sleeps == [0.5]
    assert reflector.listed.is_set() and len(state.pods) == 3


# -- the API adapters -----------------------------------------------------------------------


def test_the_api_lister_follows_continue_tokens() -> None:
    pages = {
        None: {"metadata": {"continue": "t1", "resourceVersion": "7"}, "items": [{"a": 1}]},
        "t1": {"metadata": {"continue": "", "resourceVersion": "9"}, "items": [{"b": 2}]},
    }
    seen: list[dict[str, Any]] = []

    def list_fn(**kwargs: Any) -> SimpleNamespace:
        seen.append(kwargs)
        return SimpleNamespace(data=json.dumps(pages[kwargs["_continue"]]).encode())

    items, version = watching._api_lister(list_fn)()
    assert items == [{"a": 1}, {"b": 2}] and version == "9"
    assert [call["_continue"] for call in seen] == [None, "t1"]
    assert all(call["limit"] == 500 and call["_preload_content"] is False for call in seen)


def api_list(*bodies: bytes, size: int = 7) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    """A list call whose watch requests stream ``bodies`` in turn (then nothing)."""
    calls: list[dict[str, Any]] = []
    responses: list[FakeResponse] = []

    def list_fn(**kwargs: Any) -> FakeResponse:
        calls.append(kwargs)
        body = bodies[len(responses)] if len(responses) < len(bodies) else b""
        responses.append(FakeResponse(body, size))
        return responses[-1]

    return list_fn, calls, responses


def test_the_api_watcher_decodes_lines_split_across_chunks() -> None:
    events = [
        {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "43"}}},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "44"}}},
    ]
    body = b"".join(json.dumps(e).encode() + b"\n" for e in events) + b'{"type": "ADD'
    list_fn, calls, responses = api_list(body)
    streamed = list(watching._api_watcher(list_fn)("42"))
    assert streamed == [{"type": watching.OPENED}, *events], "the cut-off last line is dropped"
    assert calls[0]["watch"] is True and calls[0]["resource_version"] == "42"
    assert calls[0]["allow_watch_bookmarks"] is True and calls[0]["_preload_content"] is False
    assert responses[0].released


async def test_an_error_event_from_the_api_is_a_relist_not_a_retry_forever(
    view: cluster.ClusterState,
) -> None:
    """After an API server restart the watch gets an ERROR event with code 410 in the stream
    (kubernetes-client's Watch.stream raised KeyError 'raw_object' on it, and the watch
    retried the expired version forever)."""
    expired = (STREAMS / "pods-expired.jsonl").read_text().splitlines()[1].encode() + b"\n"
    list_fn, calls, _ = api_list(expired)
    lister = FakeLister("pods-list.json")
    sleeps: list[float] = []
    reflector = pod_reflector(view, lister, watching._api_watcher(list_fn), sleep=sleeps.append)
    inner = reflector.watcher

    def watcher(version: str) -> Iterator[dict[str, Any]]:
        if len(calls) == 2:
            reflector.stopped.set()
        return inner(version)

    reflector.watcher = watcher
    reflector.run()
    await settle()
    assert lister.calls == 2, "listed, got the 410 in the stream, listed again"
    assert sleeps == [] and reflector.problem() == ""


def test_a_410_answer_to_the_watch_request_is_expired() -> None:
    from kubernetes import client

    def list_fn(**kwargs: Any) -> Any:
        raise client.ApiException(status=410, reason="Gone")

    with pytest.raises(watching.Expired, match="Gone"):
        next(watching._api_watcher(list_fn)("42"))


async def test_readiness_reports_a_watch_failing_longer_than_the_grace() -> None:
    state = cluster.ClusterState()
    now = [100.0]
    reflector = pod_reflector(
        state, FakeLister("pods-list.json"), FakeWatcher(), clock=lambda: now[0]
    )
    assert "not listed yet" in reflector.problem()
    reflector.relist()
    await settle()
    assert reflector.problem() == ""
    down = ConnectionRefusedError("apiserver down")
    reflector.watcher = FakeWatcher(down, down, down, down, stop=reflector.stopped)
    reflector.sleep = lambda delay: now.__setitem__(0, now[0] + delay)
    reflector.run()
    assert now[0] - 100.0 > watching.FAILING_GRACE_SECONDS
    assert "watch failing" in reflector.problem() and "apiserver down" in reflector.problem()
    reflector.stopped.clear()
    reflector.watcher = FakeWatcher("pods-watch.jsonl", stop=reflector.stopped)
    reflector.run()
    assert reflector.problem() == "", "a relist after the failures makes it current again"


async def test_a_conversion_that_raises_anything_skips_the_object() -> None:
    state = cluster.ClusterState()

    def convert(raw: object) -> model.Pod:
        raise RecursionError("maximum recursion depth exceeded")

    reflector = pod_reflector(state, FakeLister("pods-list.json"), FakeWatcher())
    reflector.convert = convert
    reflector.relist()
    await settle()
    assert reflector.listed.is_set() and state.pods == {}


async def test_a_handler_that_raises_skips_that_change_and_the_next_ones_apply() -> None:
    state = cluster.ClusterState()
    seen: list[str] = []

    def upsert(pod: model.Pod) -> None:
        if pod.uid == "api-1-uid":
            raise OverflowError("cannot convert float infinity to integer")
        seen.append(pod.uid)

    reflector = pod_reflector(state, FakeLister("pods-list.json"), FakeWatcher("pods-watch.jsonl"))
    reflector.handlers = watching.Handlers(replace=state.replace_pods, upsert=upsert, delete=print)
    reflector.step()
    await settle()
    assert seen and "api-1-uid" not in seen


class Crash(BaseException):
    """Not an Exception: nothing in the reflector's loop catches it."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_a_watch_thread_that_ended_unstopped_is_reported() -> None:
    state = cluster.ClusterState()
    reflector = pod_reflector(state, FakeLister("pods-list.json"), FakeWatcher())

    def watcher(version: str) -> Iterator[dict[str, Any]]:
        raise Crash("the thread dies")

    reflector.watcher = watcher
    reflector.start().join(5)
    await settle()
    assert reflector.ended and reflector.problem() == "pods: watch thread ended"
    stopped = pod_reflector(state, FakeLister("pods-list.json"), FakeWatcher())
    stopped.stopped.set()
    stopped.start().join(5)
    assert not stopped.ended, "a stopped reflector's thread ends as it should"
