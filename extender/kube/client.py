"""Connecting to the API server: one ``ApiClient`` from a kubeconfig or the in-cluster config,
and ``request``, the plain JSON call that binding and notifying make on its connection pool.

The ``kubernetes`` client is blocking; its calls run in worker threads (``executor``) and hand
their results back to the event loop.  Nothing outside ``kube/`` sees a client model object.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import urllib3
from kubernetes import client, config
from urllib3.util import ssl_

from extender.service.ports import ApiError, api_error

API_THREADS = 64
"""Worker threads for API calls (bindings, Events, nudges).  A call holds its thread only while
it waits for the API server, but kube-scheduler starts every binding at once, without a limit,
and a loaded API server answers one in 50-300 ms (seen on the 2-core test machine): bindings in
flight = rate x latency, 200/s x 0.3 s = 60.  With 16 threads bindings queued here for hundreds
of milliseconds and capped the rate; an idle thread costs nothing."""


@dataclass(frozen=True)
class Connection:
    api: client.ApiClient
    core: client.CoreV1Api
    executor: ThreadPoolExecutor

    def close(self) -> None:
        """At shutdown: API calls not started yet (Events, nudges) are dropped, and the worker
        threads end after the calls under way, so the process need not wait for a queue of
        calls to an API server that may be gone."""
        self.executor.shutdown(wait=False, cancel_futures=True)


def connect(*, kubeconfig: str | None = None, in_cluster: bool = False) -> Connection:
    """Load credentials and build the client.  Without either argument: in-cluster when running
    in a pod, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    configuration = client.Configuration()
    if in_cluster or (kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    # One pooled connection per worker thread, plus the list calls; the watches hold their own.
    configuration.connection_pool_maxsize = API_THREADS + 4
    api = client.ApiClient(configuration)
    _share_tls_context(api)
    executor = ThreadPoolExecutor(max_workers=API_THREADS, thread_name_prefix="kube-api")
    return Connection(api=api, core=client.CoreV1Api(api), executor=executor)


def _share_tls_context(api: client.ApiClient) -> None:
    """Give every pooled connection one ``SSLContext`` with the CA and client certificate
    loaded once.

    Left alone, urllib3 builds a context per new connection and loads the CA file, the client
    certificate, or the whole system CA bundle into it: about 50 ms of CPU per connection,
    paid again each time the pool grows under a burst of bindings.  Verification is the
    same: the context checks what the configuration asks for, with the same hostname rule.
    """
    configuration = api.configuration
    verify = bool(configuration.verify_ssl)
    context = ssl_.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED if verify else ssl.CERT_NONE)
    if verify:
        if configuration.ssl_ca_cert or configuration.ca_cert_data:
            context.load_verify_locations(
                cafile=configuration.ssl_ca_cert, cadata=configuration.ca_cert_data
            )
        else:
            context.load_default_certs()
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    api.rest_client.pool_manager.connection_pool_kw.update(
        ssl_context=context, ca_certs=None, ca_cert_data=None, cert_file=None, key_file=None
    )


def namespaced_path(namespace: str, *parts: str) -> str:
    """``/api/v1/namespaces/<ns>/<parts...>`` with every segment escaped."""
    escaped = "/".join(quote(part, safe="") for part in (namespace, *parts))
    return f"/api/v1/namespaces/{escaped}"


def request(
    connection: Connection,
    method: str,
    path: str,
    body: Mapping[str, Any],
    *,
    content_type: str = "application/json",
) -> bytes:
    """Send ``body`` as JSON to ``path`` (blocking) and return the response body.

    Authentication and default headers come from the ``ApiClient``; the connection comes from
    its pool and goes back to it: the response is read to the end, which releases it.  (An
    unread response, as ``_preload_content=False`` leaves it, keeps its connection, so the next
    call opens a new TLS connection.)  No model classes: the generated methods validate their
    arguments with pydantic and cannot decode the ``Status`` some calls answer with.
    Raises ``ApiError`` (typed by status: ``NotFound``, ``Conflict``, ``TooManyRequests``) on
    any status but 2xx, with status 0 when the server could not be reached.
    """
    api = connection.api
    headers = {"Accept": "application/json", "Content-Type": content_type}
    method, url, headers, payload, _ = api.param_serialize(
        method, path, header_params=headers, body=dict(body), auth_settings=["BearerToken"]
    )
    try:
        response = api.call_api(method, url, header_params=headers, body=payload)
        data: bytes = response.read()
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise ApiError(f"{method} {path}: API server not reached: {exc}") from exc
    if not 200 <= response.status <= 299:
        raise api_error(response.status, status_message(response.status, data))
    return data


def status_message(status: int, body: bytes) -> str:
    """The API server's own message (from the Status it answers with) when there is one."""
    try:
        message = orjson.loads(body)["message"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
    return str(message)
