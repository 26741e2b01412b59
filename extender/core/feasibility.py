"""The feasibility cache: per equivalence class, each node's verdict and score, by generation.

An entry remembers, for one signature, ``node name -> (generation, rejection, score)``.  A
lookup reuses a node's result while the node's generation is the one it was computed at (any
change to the node or to the capacity claimed on it gives it a new generation) and recomputes
only the nodes whose generation moved.  A run of identical pods therefore costs O(changed
nodes) checks, not O(nodes).  Entries live in an LRU of bounded size.  Pure: the caller passes
the nodes and the functions that judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
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
    verdicts: dict[str, tuple[int, predicates.Rejection | None]] = field(default_factory=dict)
    scores: dict[str, tuple[int, int]] = field(default_factory=dict)


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

    def _entry(self, signature: Hashable) -> tuple[_Entry, bool]:
        entry = self._entries.get(signature)
        if entry is None:
            entry = self._entries[signature] = _Entry()
            return entry, False
        return entry, True

    def verdicts(
        self, signature: Hashable, nodes: list[cluster.NodeState], judge: Judge
    ) -> list[predicates.Rejection | None]:
        """The verdict for each node, reusing results of nodes whose generation is unchanged."""
        entry, existed = self._entry(signature)
        known = entry.verdicts
        out: list[predicates.Rejection | None] = []
        rechecked = 0
        for state in nodes:
            cached = known.get(state.node.name)
            if cached is not None and cached[0] == state.generation:
                out.append(cached[1])
                continue
            verdict = judge(state)
            known[state.node.name] = (state.generation, verdict)
            out.append(verdict)
            rechecked += 1
        self._count(existed, rechecked)
        return out

    def scores(
        self, signature: Hashable, nodes: list[cluster.NodeState], score: Scorer
    ) -> list[int]:
        """The score of each node, reusing scores of nodes whose generation is unchanged."""
        entry, existed = self._entry(signature)
        known = entry.scores
        out: list[int] = []
        rechecked = 0
        for state in nodes:
            cached = known.get(state.node.name)
            if cached is not None and cached[0] == state.generation:
                out.append(cached[1])
                continue
            value = score(state)
            known[state.node.name] = (state.generation, value)
            out.append(value)
            rechecked += 1
        self._count(existed, rechecked)
        return out

    def _count(self, existed: bool, rechecked: int) -> None:
        stats = self.stats
        stats.rechecked += rechecked
        if not existed:
            stats.misses += 1
        elif rechecked:
            stats.partial_hits += 1
        else:
            stats.hits += 1
