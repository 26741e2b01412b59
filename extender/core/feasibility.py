"""The feasibility cache: per equivalence class, each node's verdict and score, by generation.

An entry remembers, for one signature, which nodes it has judged, which of those it rejected
and why, each node's score, and the view's generation when it was last used.  Any change to a
node or to the capacity claimed on it gives the node a new generation and a line in the view's
change log; a lookup first forgets the nodes changed since the entry's generation, then judges
only offered nodes it has no result for.  A run of identical pods therefore costs O(changed
nodes) checks, not O(nodes).

The answer is built from node *names* with set operations and C-level maps: when every offered
node is judged and none is rejected, filter answers the offered list itself, so a full hit does
no per-node Python work.  Node states are looked up (by the caller's ``judge``/``score``) only
for nodes that must be judged.

A signature gets an entry the second time filter sees it, so pods that share their signature
with no other pod (every pod distinct) cost no more than without a cache; prioritize uses the
entry filter made.  Entries live in an LRU of bounded size.  Pure: the caller passes the names
and the functions that judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence, Set
from dataclasses import dataclass, field

import cachetools

from extender.core import cluster, predicates

Judge = Callable[[str], predicates.Rejection | None]
"""Judges the named node (a node of the view) for the entry's signature."""
Scorer = Callable[[str], int]


@dataclass(slots=True)
class Stats:
    hits: int = 0
    """Lookups that reused every node's result."""
    partial_hits: int = 0
    """Lookups that recomputed some nodes."""
    misses: int = 0
    """Lookups for a signature with no entry (or an empty one)."""
    rechecked: int = 0
    """Nodes computed in partial hits and misses."""
    evictions: int = 0


@dataclass(slots=True)
class _Entry:
    valid_at: int = 0
    """The view's generation when this entry was last brought up to date."""
    judged: set[str] = field(default_factory=set)
    """Nodes with a verdict (passed or rejected)."""
    rejected: set[str] = field(default_factory=set)
    """The judged nodes that were rejected: the keys of ``failed`` and ``unresolvable``."""
    failed: dict[str, str] = field(default_factory=dict)
    unresolvable: dict[str, str] = field(default_factory=dict)
    scores: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Node -> (node, score): prioritize's answer items, reused as they are."""

    def forget(self, names: Sequence[str]) -> None:
        judged, rejected, scores = self.judged, self.rejected, self.scores
        for name in names:
            judged.discard(name)
            scores.pop(name, None)
            if name in rejected:
                rejected.discard(name)
                self.failed.pop(name, None)
                self.unresolvable.pop(name, None)

    def clear(self) -> None:
        self.judged.clear()
        self.rejected.clear()
        self.failed.clear()
        self.unresolvable.clear()
        self.scores.clear()


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
        # Signatures filter saw once and has no entry for (insertion order, bounded).
        self._sighted: dict[Hashable, None] = {}
        self._max_sighted = 4 * max_signatures

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(
        self, signature: Hashable, view: cluster.ClusterState, *, admit: bool
    ) -> _Entry | None:
        """The signature's entry with the results of every node changed since its last use
        dropped (O(changes), not O(nodes)).  Without one, None; with ``admit``, a new entry
        if the signature was sighted before (else it is sighted now)."""
        entry = self._entries.get(signature)
        if entry is None:
            if not admit:
                return None
            if self._sighted.pop(signature, False) is False:
                if len(self._sighted) >= self._max_sighted:
                    del self._sighted[next(iter(self._sighted))]
                self._sighted[signature] = None
                return None
            entry = self._entries[signature] = _Entry()
        elif entry.valid_at != view.generation:
            changed = view.changed_since(entry.valid_at)
            if changed is None:
                entry.clear()
            else:
                entry.forget(changed)
        entry.valid_at = view.generation
        return entry

    def filter(
        self,
        signature: Hashable,
        names: list[str],
        judge: Judge,
        *,
        view: cluster.ClusterState,
    ) -> predicates.Sorted:
        """Filter's answer for ``names``, judging only nodes new to the entry or changed since
        it was last used.  With no offered node rejected, ``passed`` is ``names`` itself.

        ``judge`` may raise for a name that is not a node of the view; nothing is cached
        for it."""
        entry = self._entry(signature, view, admit=True)
        if entry is None or not entry.judged:  # nothing to reuse: judge as without a cache
            answer = predicates.sort(names, judge)
            if entry is not None:
                entry.judged.update(names)
                entry.failed.update(answer.failed)
                entry.unresolvable.update(answer.unresolvable)
                entry.rejected.update(answer.failed, answer.unresolvable)
            self._count(miss=True, rechecked=len(names))
            return answer
        judged = entry.judged
        fresh: Set[str] = set() if judged.issuperset(names) else set(names) - judged
        for name in fresh:
            verdict = judge(name)
            judged.add(name)
            if verdict is not None:
                entry.rejected.add(name)
                if verdict.code is predicates.Code.UNRESOLVABLE:
                    entry.unresolvable[name] = verdict.reason
                else:
                    entry.failed[name] = verdict.reason
        self._count(miss=False, rechecked=len(fresh))
        rejected = entry.rejected
        if rejected.isdisjoint(names):
            return predicates.Sorted(names, {}, {})
        hit = rejected.intersection(names)
        failed, unresolvable = entry.failed, entry.unresolvable
        return predicates.Sorted(
            [name for name in names if name not in hit],
            {name: failed[name] for name in hit if name in failed},
            {name: unresolvable[name] for name in hit if name in unresolvable},
        )

    def scores(
        self,
        signature: Hashable,
        names: Sequence[str],
        score: Scorer,
        *,
        view: cluster.ClusterState,
    ) -> list[tuple[str, int]]:
        """``(name, score)`` for each of ``names``, computing only nodes new or changed (in
        the signature's entry, made by ``filter``).

        ``score`` may raise for a name that is not a node of the view; nothing is cached
        for it."""
        entry = self._entry(signature, view, admit=False)
        if entry is None or not entry.scores:  # nothing to reuse
            answer = [(name, score(name)) for name in names]
            if entry is not None:
                entry.scores.update(zip(names, answer, strict=True))
            self._count(miss=True, rechecked=len(names))
            return answer
        known = entry.scores
        try:
            answer = list(map(known.__getitem__, names))
        except KeyError:
            pass
        else:
            self._count(miss=False, rechecked=0)
            return answer
        fresh = set(names).difference(known)
        for name in fresh:
            known[name] = (name, score(name))
        self._count(miss=False, rechecked=len(fresh))
        return list(map(known.__getitem__, names))

    def _count(self, *, miss: bool, rechecked: int) -> None:
        stats = self.stats
        stats.rechecked += rechecked
        if miss:
            stats.misses += 1
        elif rechecked:
            stats.partial_hits += 1
        else:
            stats.hits += 1
