"""The feasibility cache: per equivalence class, each node's verdict and score, by generation.

An entry remembers, for one signature, each node's verdict and score, and the view's
generation when it was last used.  Any change to a node or to the capacity claimed on it gives
the node a new generation and a line in the view's change log; a lookup first drops the results
of the nodes changed since the entry's generation, then judges only nodes it has no result for.
A run of identical pods therefore costs O(changed nodes) checks, plus one dict lookup per
offered node, not O(nodes) checks.  Entries live in an LRU of bounded size.  Pure: the caller
passes the nodes and the functions that judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import cachetools

from extender.core import cluster, predicates

Judge = Callable[[cluster.NodeState], predicates.Rejection | None]
Scorer = Callable[[cluster.NodeState], int]


@dataclass(slots=True)
class Stats:
    hits: int = 0
    """Lookups that reused every node's result."""
    partial_hits: int = 0
    """Lookups that recomputed some nodes."""
    misses: int = 0
    """Lookups for a signature with no entry."""
    rechecked: int = 0
    """Nodes recomputed in partial hits and misses."""
    evictions: int = 0


@dataclass(slots=True)
class _Entry:
    valid_at: int = 0
    """The view's generation when this entry was last brought up to date."""
    verdicts: dict[str, predicates.Rejection | None] = field(default_factory=dict)
    scores: dict[str, int] = field(default_factory=dict)


class _Entries(cachetools.LRUCache[Hashable, _Entry]):
    def __init__(self, maxsize: int, stats: Stats) -> None:
        super().__init__(maxsize)
        self.stats = stats

    def popitem(self) -> tuple[Hashable, _Entry]:
        self.stats.evictions += 1
        return super().popitem()


class FeasibilityCache:
    def __init__(self, *, max_signatures: int = 128) -> None:
        self.stats = Stats()
        self._entries = _Entries(max_signatures, self.stats)

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, signature: Hashable, view: cluster.ClusterState) -> tuple[_Entry, bool]:
        """The signature's entry with the results of every node changed since its last use
        dropped (O(changes), not O(nodes))."""
        entry = self._entries.get(signature)
        existed = entry is not None
        if entry is None:
            entry = self._entries[signature] = _Entry()
        else:
            changed = view.changed_since(entry.valid_at)
            if changed is None:
                entry.verdicts.clear()
                entry.scores.clear()
            else:
                for name in changed:
                    entry.verdicts.pop(name, None)
                    entry.scores.pop(name, None)
        entry.valid_at = view.generation
        return entry, existed

    def verdicts(
        self,
        signature: Hashable,
        states: Sequence[cluster.NodeState],
        judge: Judge,
        *,
        view: cluster.ClusterState,
    ) -> list[predicates.Rejection | None]:
        """The verdict on each of ``states`` (nodes of ``view``), judging only nodes that are
        new to the entry or changed since it was last used."""
        entry, existed = self._entry(signature, view)
        known = entry.verdicts
        fresh = [state for state in states if state.node.name not in known]
        for state in fresh:
            known[state.node.name] = judge(state)
        self._count(existed, len(fresh))
        return [known[state.node.name] for state in states]

    def scores(
        self,
        signature: Hashable,
        states: Sequence[cluster.NodeState],
        score: Scorer,
        *,
        view: cluster.ClusterState,
    ) -> list[int]:
        """The score of each of ``states``, computing only nodes new or changed."""
        entry, existed = self._entry(signature, view)
        known = entry.scores
        fresh = [state for state in states if state.node.name not in known]
        for state in fresh:
            known[state.node.name] = score(state)
        self._count(existed, len(fresh))
        return [known[state.node.name] for state in states]

    def _count(self, existed: bool, rechecked: int) -> None:
        stats = self.stats
        stats.rechecked += rechecked
        if not existed:
            stats.misses += 1
        elif rechecked:
            stats.partial_hits += 1
        else:
            stats.hits += 1
