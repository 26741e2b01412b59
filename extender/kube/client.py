"""Connecting to the API server: one ``ApiClient`` from a kubeconfig or the in-cluster config.

The ``kubernetes`` client is blocking; its calls run in worker threads (``executor``) and hand
their results back to the event loop.  Nothing outside ``kube/`` sees a client model object.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client, config


@dataclass(frozen=True)
class Connection:
    api: client.ApiClient
    core: client.CoreV1Api
    executor: ThreadPoolExecutor


def connect(*, kubeconfig: str | None = None, in_cluster: bool = False) -> Connection:
    """Load credentials and build the client.  Without either argument: in-cluster when running
    in a pod, else ``$KUBECONFIG`` or ``~/.kube/config``."""
    configuration = client.Configuration()
    if in_cluster or (kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ):
        config.load_incluster_config(client_configuration=configuration)
    else:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    # Gang members are bound concurrently: allow that many API connections.
    configuration.connection_pool_maxsize = 64
    api = client.ApiClient(configuration)
    executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="kube-api")
    return Connection(api=api, core=client.CoreV1Api(api), executor=executor)
