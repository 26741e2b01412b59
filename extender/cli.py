"""The ``muster`` command: ``serve`` the extender, or run the ``demo``.

Flags become one ``Settings``; the cluster source is chosen here (live cluster through
``kube/``, or the simulated cluster) and handed to the app factory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from extender import __version__, demo, queuefile, simulation
from extender.core import cluster, kueue, scoring
from extender.service import ExtenderService, background
from extender.settings import Settings
from extender.web.app import make_app

log = logging.getLogger("muster")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="muster", description=__doc__)
    parser.add_argument("--version", action="version", version=f"muster {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the extender verbs for kube-scheduler")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8888)
    source = serve.add_mutually_exclusive_group()
    source.add_argument("--kubeconfig", metavar="PATH", help="watch the cluster of this kubeconfig")
    source.add_argument(
        "--in-cluster",
        action="store_true",
        help="use the pod's service account (when deployed in the cluster)",
    )
    source.add_argument(
        "--simulate-nodes",
        type=int,
        metavar="N",
        help="no Kubernetes: serve N generated nodes, bind in memory",
    )
    source.add_argument(
        "--nodes-file",
        type=Path,
        metavar="YAML",
        help="no Kubernetes: serve the Node objects in this YAML file",
    )
    serve.add_argument(
        "--scoring",
        choices=[s.value for s in scoring.Strategy],
        default=scoring.Strategy.LEAST_ALLOCATED.value,
        help="prioritize strategy: spread (LeastAllocated) or pack (MostAllocated)",
    )
    serve.add_argument(
        "--gang-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="default gang deadline (annotation muster.dev/gang-timeout-seconds overrides it "
        "per group; default 300)",
    )
    serve.add_argument(
        "--topology-keys",
        default="muster.dev/rack,topology.kubernetes.io/zone",
        help="node label keys of topology domains, narrowest first, comma separated; gangs "
        "are placed in the fewest domains",
    )
    serve.add_argument(
        "--no-feasibility-cache",
        action="store_true",
        help="judge every node afresh for every pod (the cache of identical pods' verdicts "
        "is on by default; results are the same)",
    )
    serve.add_argument(
        "--queues",
        metavar="FILE",
        help="Kueue ResourceFlavor/ClusterQueue/LocalQueue/WorkloadPriorityClass YAML: pods "
        "labelled kueue.x-k8s.io/queue-name are admitted by these quotas (reloaded on change)",
    )
    serve.add_argument(
        "--scheduler-names",
        default="default-scheduler",
        metavar="NAMES",
        help="schedulerName of the kube-scheduler profiles that call muster, comma separated: "
        "a bind of a pod of any other scheduler is refused (default default-scheduler)",
    )
    serve.add_argument(
        "--replicate-labels",
        default="",
        metavar="KEYS",
        help="pod label keys copied into workload records (GET /debug/workloads), comma separated",
    )
    # 32 MiB: 4x the largest filter/prioritize and 3x the largest preempt call of the shipped
    # configs (nodeCacheCapable: true).  A Pod is at most ~3 MiB of JSON (etcd stores at most
    # 1.5 MiB of protobuf; JSON is about twice that); filter/prioritize add NodeNames, at most
    # 15,000 names of up to 253 characters (~3.7 MiB); preempt adds NodeNameToMetaVictims for at
    # most max(100, 10% of nodes) = 1,500 candidates with up to 110 victim UIDs each (~8 MiB).
    # bind is under 1 KiB.  Each request in flight may hold about twice its body while read.
    # nodeCacheCapable: false sends ~10 KB per node: raise the limit for that.
    serve.add_argument(
        "--max-body-mb",
        type=float,
        default=32.0,
        help="largest request body accepted, in MiB (default 32: 4x the largest filter call of "
        "a 15,000-node cluster with node names only)",
    )
    serve.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate")
    serve.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert")
    serve.add_argument(
        "--client-ca", metavar="FILE", help="require client certificates signed by this CA"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    run_demo = commands.add_parser(
        "demo", help="run the extender on a simulated cluster and drive it like kube-scheduler does"
    )
    run_demo.add_argument("--nodes", type=int, default=100)
    run_demo.add_argument("--pods", type=int, default=300)
    run_demo.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"]
    )
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("muster: --tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        raise SystemExit("muster: --client-ca needs --tls-cert and --tls-key")
    return Settings(
        host=args.host,
        port=args.port,
        scoring=scoring.Strategy(args.scoring),
        max_body_bytes=int(args.max_body_mb * 2**20),
        gang_timeout_seconds=args.gang_timeout,
        feasibility_cache=not args.no_feasibility_cache,
        topology_keys=tuple(k.strip() for k in args.topology_keys.split(",") if k.strip()),
        queues_file=args.queues,
        replicate_labels=tuple(k.strip() for k in args.replicate_labels.split(",") if k.strip()),
        scheduler_names=tuple(n.strip() for n in args.scheduler_names.split(",") if n.strip()),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        client_ca=args.client_ca,
    )


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS for kube-scheduler's ``enableHTTPS``; with a client CA, mutual TLS."""
    if not settings.tls_cert or not settings.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.client_ca:
        context.load_verify_locations(settings.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


Background = dict[str, background.Run]


@dataclass(frozen=True)
class Built:
    service: ExtenderService
    work: Background
    """The background work that keeps the service current."""
    closers: tuple[Callable[[], None], ...] = ()
    """What to close at shutdown."""


def _build(args: argparse.Namespace, settings: Settings) -> Built:
    """The service on its cluster: simulated (nodes generated or from a file) or live."""
    state = cluster.ClusterState()
    if args.simulate_nodes is not None or args.nodes_file is not None:
        nodes = (
            simulation.nodes_from_yaml(args.nodes_file)
            if args.nodes_file
            else simulation.generated_nodes(args.simulate_nodes)
        )
        evictor = simulation.SimulatedEvictor()
        service = ExtenderService(
            state=state,
            binder=simulation.SimulatedBinder(state),
            evictor=evictor,
            settings=settings,
        )
        evictor.feed = service
        simulation.SimulatedCluster(nodes).populate(service)
        log.info("simulated cluster with %d nodes", len(nodes))
        return Built(service, _with_queues(service, settings, {}))
    from extender.kube import binding, client, evicting, notifying, watching

    connection = client.connect(kubeconfig=args.kubeconfig, in_cluster=args.in_cluster)
    service = ExtenderService(
        state=state,
        binder=binding.KubeBinder(connection),
        notifier=notifying.KubeNotifier(connection),
        evictor=evicting.KubeEvictor(connection),
        settings=settings,
    )
    source = watching.KubeSource(connection, service)
    service.add_readiness_check(source.problem)
    work = _with_queues(service, settings, {"cluster-source": source.run})
    return Built(service, work, closers=(connection.close,))


def _with_queues(service: ExtenderService, settings: Settings, work: Background) -> Background:
    """Load the queues file now (an invalid one stops the server) and keep it current beside
    the other background work."""
    if settings.queues_file is None:
        return work
    watcher = queuefile.QueueFile(
        Path(settings.queues_file),
        service.admission.configure,
        interval=settings.queues_poll_seconds,
        rejected=service.admission.config_rejected,
    )
    try:
        watcher.load_now()
    except kueue.ConfigError as exc:
        raise SystemExit(f"muster: --queues: {exc}") from None
    return {**work, "queues-file": watcher.watch}


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - optional speed-up
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def serve(args: argparse.Namespace) -> None:
    settings = _settings(args)
    built = _build(args, settings)
    app = make_app(
        built.service,
        background_work=built.work,
        closers=built.closers,
        max_body_bytes=settings.max_body_bytes,
    )
    _install_uvloop()
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context(settings),
        access_log=None,
        # A scheduler that hangs up (it restarted) cancels its call: a gang member's bind
        # then leaves the gate instead of holding it until the deadline.
        handler_cancellation=True,
        print=lambda msg: log.info("%s", msg.strip()),
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "serve":
        serve(args)
    elif args.command == "demo":
        _install_uvloop()
        report = asyncio.run(demo.run(nodes=args.nodes, pods=args.pods))
        print(report.render())
        sys.exit(1 if report.imitation.errors else 0)
