"""Binding, Events and nudges against a fake API server at the HTTP level: what is sent, what
an error becomes, and that every call reuses one pooled keep-alive connection."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kubernetes import client

from extender.kube import binding, notifying
from extender.kube import client as kube_client
from extender.service import ports
from tests import builders
from tests.fakes import TLS, FakeAPI, serve


@pytest.fixture
def api() -> Iterator[FakeAPI]:
    fake = FakeAPI()
    server = serve(fake)
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def tls_api() -> Iterator[FakeAPI]:
    fake = FakeAPI()
    server = serve(fake, tls=True)
    yield fake
    server.shutdown()
    server.server_close()


def kubeconfig(tmp_path: Path, server: str, ca: Path) -> str:
    path = tmp_path / "kubeconfig"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "fake", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "muster", "user": {"token": "secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "muster"}}],
        "current-context": "fake",
    }
    path.write_text(json.dumps(doc))
    return str(path)


@pytest.fixture
def connection(api: FakeAPI) -> Iterator[kube_client.Connection]:
    configuration = client.Configuration(host=api.url)
    configuration.api_key = {"BearerToken": "Bearer secret"}  # as load_kube_config sets it
    configuration.connection_pool_maxsize = kube_client.API_THREADS
    api_client = client.ApiClient(configuration)
    executor = ThreadPoolExecutor(max_workers=kube_client.API_THREADS)
    yield kube_client.Connection(api_client, client.CoreV1Api(api_client), executor)
    executor.shutdown(wait=True)
    api_client.close()


def test_a_binding_posts_the_pods_binding_with_its_uid(api, connection):
    pod = builders.pod("web-1", namespace="shop", uid="u-1")
    binding.KubeBinder(connection)._bind(pod, "node-7")
    (seen,) = api.seen
    assert (seen.method, seen.path) == ("POST", "/api/v1/namespaces/shop/pods/web-1/binding")
    assert seen.headers["authorization"] == "Bearer secret"
    assert seen.body == {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-7"},
    }


def test_bindings_reuse_one_pooled_connection(api, connection):
    binder = binding.KubeBinder(connection)
    for i in range(50):
        binder._bind(builders.pod(f"p{i}", uid=f"u{i}"), "n1")
    assert len(api.seen) == 50
    assert api.connections == 1


async def test_concurrent_bindings_open_at_most_one_connection_per_worker(api, connection):
    binder = binding.KubeBinder(connection)
    pods = [builders.pod(f"p{i}", uid=f"u{i}") for i in range(200)]
    await asyncio.gather(*(binder.bind(pod, "n1") for pod in pods))
    assert len(api.seen) == 200
    assert api.connections <= kube_client.API_THREADS


def test_a_refused_binding_carries_the_api_servers_message_and_frees_the_connection(
    api, connection
):
    api.status = 409
    api.reply = {
        "kind": "Status",
        "status": "Failure",
        "message": 'pods "p" is already assigned to node "n2"',
        "code": 409,
    }
    binder = binding.KubeBinder(connection)
    for _ in range(3):
        with pytest.raises(RuntimeError, match='is already assigned to node "n2"'):
            binder._bind(builders.pod("p", uid="u"), "n1")
    assert api.connections == 1


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (404, ports.NotFound, False),
        (409, ports.Conflict, False),
        (429, ports.TooManyRequests, True),
        (500, ports.ApiError, True),
        (403, ports.ApiError, False),
    ],
)
def test_api_errors_are_typed_by_status(api, connection, status, kind, retryable):
    api.status = status
    api.reply = {"kind": "Status", "status": "Failure", "message": f"refused {status}"}
    with pytest.raises(kind, match=f"refused {status}") as refused:
        binding.KubeBinder(connection)._bind(builders.pod("p", uid="u"), "n1")
    assert type(refused.value) is kind
    assert refused.value.status == status and refused.value.retryable is retryable


def test_an_unreachable_api_server_is_a_retryable_api_error(tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"https://127.0.0.1:{port}"
    connection = kube_client.connect(kubeconfig=kubeconfig(tmp_path, url, TLS / "server.pem"))
    with pytest.raises(ports.ApiError, match="not reached") as refused:
        binding.KubeBinder(connection)._bind(builders.pod("p", uid="u"), "n1")
    assert refused.value.status == 0 and refused.value.retryable
    connection.executor.shutdown()


def test_events_and_nudges_reuse_the_connection_too(api, connection):
    notifier = notifying.KubeNotifier(connection)
    pod = builders.pod("w-0", namespace="ml", uid="u-0")
    for _ in range(5):
        notifier._event(pod, "GangWaiting", "waiting for gang ml/train/main: 1/3 pods", False)
        notifier._nudge(pod)
    assert [s.path for s in api.seen[:2]] == [
        "/api/v1/namespaces/ml/events",
        "/api/v1/namespaces/ml/pods/w-0",
    ]
    patch = api.seen[1]
    assert patch.method == "PATCH"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert notifying.NUDGE_ANNOTATION in patch.body["metadata"]["annotations"]
    assert api.connections == 1


def test_event_body_is_a_core_v1_event_about_the_pod():
    pod = builders.pod("w-0", namespace="ml", uid="u-0")
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    body = notifying.event_body(
        pod, reason="GangTimedOut", message="x" * 2000, warning=True, instance="h", now=now
    )
    assert body["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "ml",
        "name": "w-0",
        "uid": "u-0",
    }
    assert body["metadata"] == {"generateName": "w-0.", "namespace": "ml"}
    assert body["type"] == "Warning" and len(body["message"]) == 1024
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-01-02T03:04:05Z"


async def test_over_tls_the_pool_reuses_connections_and_still_verifies_the_server(
    tls_api, tmp_path
):
    connection = kube_client.connect(
        kubeconfig=kubeconfig(tmp_path, tls_api.url, TLS / "server.pem")
    )
    binder = binding.KubeBinder(connection)
    for i in range(20):
        binder._bind(builders.pod(f"p{i}", uid=f"u{i}"), "n1")
    assert tls_api.connections == 1
    pods = [builders.pod(f"q{i}", uid=f"v{i}") for i in range(200)]
    await asyncio.gather(*(binder.bind(pod, "n1") for pod in pods))
    assert len(tls_api.seen) == 220
    assert tls_api.connections <= kube_client.API_THREADS
    assert tls_api.seen[0].headers["authorization"] == "Bearer secret"
    connection.executor.shutdown()


def test_a_server_certificate_from_another_ca_is_still_refused(tls_api, tmp_path):
    connection = kube_client.connect(
        kubeconfig=kubeconfig(tmp_path, tls_api.url, TLS / "other-ca.pem")
    )
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        binding.KubeBinder(connection)._bind(builders.pod("p", uid="u"), "n1")
    assert tls_api.seen == []
    connection.executor.shutdown()


def test_closing_the_connection_drops_api_calls_not_started(connection):
    release = threading.Event()
    calls = [
        connection.executor.submit(release.wait, 5) for _ in range(kube_client.API_THREADS + 6)
    ]
    connection.close()
    release.set()
    assert sum(call.cancelled() for call in calls) == 6, "the queued calls are dropped"
    assert all(call.result() for call in calls if not call.cancelled()), "running calls finish"
