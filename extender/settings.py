"""Settings: every knob of the extender in one frozen, documented dataclass.

The CLI fills it from flags; nothing else reads the environment.  Core code never sees it: the
service passes the values core functions need as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from extender.core import scoring


@dataclass(frozen=True, kw_only=True)
class Settings:
    host: str = "0.0.0.0"
    """Address to listen on."""

    port: int = 8888
    """Port to listen on; the scheduler config's ``urlPrefix`` points here."""

    scoring: scoring.Strategy = scoring.Strategy.LEAST_ALLOCATED
    """Prioritize strategy: ``LeastAllocated`` spreads pods, ``MostAllocated`` packs them."""

    max_body_bytes: int = 32 * 2**20
    """Largest request body accepted: about 4x the largest real filter call (a ~3 MiB Pod and
    15,000 node names) and 3x the largest preempt call (the reasoning is at ``--max-body-mb``
    in ``cli.py``)."""

    body_read_timeout_seconds: float = 10.0
    """How long a request body may take to arrive whole.  kube-scheduler writes its body at
    once (megabytes in milliseconds on loopback) and gives up after its ``httpTimeout`` (5 s by
    default); a client that stalls mid-body is answered with HTTP 400 and disconnected, so a
    half-sent body never holds its buffer for longer than this."""

    feasibility_cache: bool = True
    """Reuse filter verdicts and scores of identical pods per node while the node is unchanged
    (opportunistic batching); off computes every node afresh.  Results are equal either way."""

    cache_signatures: int = 128
    """How many equivalence classes (distinct pod shapes) the cache keeps (LRU)."""

    remembered_pods: int = 65536
    """How many pods seen in filter calls are remembered for the bind that follows (LRU), and
    how many deleted pods' uids are remembered so a late call cannot bring one back."""

    scheduler_names: tuple[str, ...] = ("default-scheduler",)
    """The ``spec.schedulerName`` values of the kube-scheduler profiles that call muster: a bind
    of any other pod is refused."""

    tentative_seconds: float = 10.0
    """How long a pod known only from the scheduler's calls (not yet from the watch) counts in
    gangs and quota: after this long with a healthy watch that never delivered it, it is
    dropped (it was deleted before the watch saw it, or never existed)."""

    tls_cert: str | None = None
    """PEM certificate to serve HTTPS with (kube-scheduler: ``enableHTTPS: true``)."""

    tls_key: str | None = None
    """PEM private key for ``tls_cert``."""

    client_ca: str | None = None
    """PEM CA bundle; when set, clients (the scheduler) must present a certificate it signed."""

    gang_timeout_seconds: float = 300.0
    """Default gang deadline (``muster.dev/gang-timeout-seconds`` overrides it per group): from
    the plan, and again from the first member's bind call, until every quorum member reached
    bind.  At the deadline the waiting binds fail and the reservation is released."""

    gang_backoff_base_seconds: float = 10.0
    """First requeue delay of a gang that timed out; doubled on every further timeout."""

    gang_backoff_max_seconds: float = 300.0
    """Cap of the gang requeue delay."""

    queues_file: str | None = None
    """Kueue queue objects (ResourceFlavor, ClusterQueue, LocalQueue, WorkloadPriorityClass)
    to admit queued pods by; polled for changes every ``queues_poll_seconds``.  None: every
    pod bypasses quota."""

    replicate_labels: tuple[str, ...] = ()
    """Pod label keys copied into each workload's record (``GET /debug/workloads``)."""

    queues_poll_seconds: float = 1.0
    """How often the queues file is checked for changes."""

    topology_keys: tuple[str, ...] = ("muster.dev/rack", "topology.kubernetes.io/zone")
    """Node label keys of topology domains, narrowest first; a gang is placed in one domain of
    the first level that can hold it, else anywhere."""
