"""How nodes are judged and scored for one pod: with the feasibility cache for pods of a known
shape (``core.feasibility``), or one by one; by name from the view (``nodeCacheCapable:
true``) or from node objects the request carries (``false``, never cached)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from extender.core import cluster, equivalence, feasibility, model, predicates, resources, scoring
from extender.service.ports import RequestError
from extender.settings import Settings


class NodeJudge:
    def __init__(self, *, state: cluster.ClusterState, settings: Settings) -> None:
        self.state = state
        self.strategy = settings.scoring
        self.cache = (
            feasibility.FeasibilityCache(max_signatures=settings.cache_signatures)
            if settings.feasibility_cache
            else None
        )

    def check_names(self, names: Sequence[object]) -> None:
        """Raise ``RequestError`` unless every name is a node of the view.

        The cache's fast paths do not check names one by one: looking up a name that is no
        node fails (KeyError, TypeError) and lands here; a failure with good names is a bug
        and goes on up."""
        if not all(isinstance(name, str) for name in names):
            raise RequestError("NodeNames must be a list of strings")
        nodes = self.state.nodes
        missing = [name for name in names if name not in nodes]
        if missing:
            shown = ", ".join(repr(n) for n in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise RequestError(f"unknown node(s) {shown}{more}: not in the extender's view")

    def _signature(self, pod: model.Pod) -> equivalence.Signature | None:
        return equivalence.signature(pod) if self.cache is not None else None

    def _used(self, name: str) -> resources.ResourceList:
        state = self.state.nodes.get(name)
        return state.used if state is not None else {}

    def judge(
        self,
        pod: model.Pod,
        node_names: Sequence[str],
        node_objects: Mapping[str, model.Node] | None,
    ) -> predicates.FilterOutcome:
        """Every node's verdict (KeyError or TypeError for a name the view lacks)."""
        if node_objects is not None:  # never cached: the objects are the request's

            def judge_object(name: str) -> predicates.Rejection | None:
                return predicates.check(pod, node_objects[name], self._used(name))

            return predicates.sort(node_names, judge_object)
        nodes = self.state.nodes

        def judge(name: str) -> predicates.Rejection | None:
            state = nodes[name]
            return predicates.check(pod, state.node, state.used)

        signature = self._signature(pod)
        if signature is None or self.cache is None:
            return predicates.sort(node_names, judge)
        names = node_names if isinstance(node_names, list) else list(node_names)
        return self.cache.filter(signature, names, judge, view=self.state)

    def scores(
        self,
        pod: model.Pod,
        node_names: Sequence[str],
        node_objects: Mapping[str, model.Node] | None,
    ) -> scoring.Scores:
        """Every node's score, 0..10, with the configured strategy."""
        strategy, requests = self.strategy, pod.requests
        if node_objects is not None:
            return scoring.Scores(
                node_names,
                [
                    scoring.score(strategy, requests, node_objects[name], self._used(name))
                    for name in node_names
                ],
            )
        nodes = self.state.nodes

        def score(name: str) -> int:
            state = nodes[name]
            return scoring.score(strategy, requests, state.node, state.used)

        signature = self._signature(pod)
        try:
            if signature is None or self.cache is None:
                return scoring.Scores(node_names, list(map(score, node_names)))
            return self.cache.scores(signature, node_names, score, view=self.state)
        except (KeyError, TypeError):
            self.check_names(node_names)
            raise

    def stats(self) -> tuple[dict[str, int], int]:
        """The cache's counters and its number of entries (zeros without a cache)."""
        stats = self.cache.stats if self.cache is not None else feasibility.Stats()
        counters = {
            "hits": stats.hits,
            "partial_hits": stats.partial_hits,
            "misses": stats.misses,
            "rechecked": stats.rechecked,
            "evictions": stats.evictions,
        }
        return counters, len(self.cache) if self.cache is not None else 0
