"""The feasibility cache: per equivalence class, each node's verdict and score, by generation.

An entry remembers, for one signature, which nodes it has judged, which of those it rejected
and why, and each node's score, each half with the view's generation it is valid for.  Any
change to a node or to the capacity claimed on it gives the node a new generation and a line
in the view's change log.  A lookup first judges again the nodes it knows that changed since
(a run of identical pods changes one node per pod: the one the last pod was bound to), so
its results stay complete; after many changes it forgets those nodes instead and judges them
when they are offered.  Either way a run of identical pods costs O(changed nodes) checks, not
O(nodes).

The answer is built from node *names* with set operations and C-level maps: when every offered
node is judged and none is rejected, filter answers the offered list itself, so a hit does no
per-node Python work.  Node states are looked up (by the caller's ``judge``/``score``) only
for nodes that must be judged.

A signature gets an entry the second time filter sees it, so pods that share their signature
with no other pod (every pod distinct) cost no more than without a cache; prioritize uses the
entry filter made.  Entries live in an LRU of bounded size.  Pure: the caller passes the names
and the functions that judge them.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable, Iterable, Sequence, Set
from dataclasses import dataclass, field

import cachetools

from extender.core import cluster, predicates, scoring

Judge = Callable[[str], predicates.Rejection | None]
"""Judges the named node (a node of the view) for the entry's signature."""
Scorer = Callable[[str], int]


@dataclass(slots=True)
class Stats:
    hits: int = 0
    """Lookups that reused every node's result."""
    partial_hits: int = 0
    """Lookups that computed some nodes (changed, or not offered before)."""
    misses: int = 0
    """Lookups for a signature with no entry (or an empty one)."""
    rechecked: int = 0
    """Nodes computed in partial hits and misses."""
    evictions: int = 0


@dataclass(slots=True)
class _Verdicts:
    valid_at: int = 0
    """The view's generation these verdicts are up to date with."""
    passed: set[str] = field(default_factory=set)
    """Judged nodes that passed: a call offering only these is answered in one set pass."""
    failed: dict[str, str] = field(default_factory=dict)
    """Judged nodes rejected where preemption may help, with the reason."""
    unresolvable: dict[str, str] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.passed or name in self.failed or name in self.unresolvable

    def __bool__(self) -> bool:
        return bool(self.passed or self.failed or self.unresolvable)

    def record(self, name: str, verdict: predicates.Rejection | None) -> None:
        if verdict is None:
            self.passed.add(name)
        else:
            if verdict.code is predicates.Code.UNRESOLVABLE:
                self.unresolvable[name] = verdict.reason
            else:
                self.failed[name] = verdict.reason

    def clear(self) -> None:
        self.passed.clear()
        self.failed.clear()
        self.unresolvable.clear()

    def forget(self, names: Iterable[str]) -> None:
        passed, failed, unresolvable = self.passed, self.failed, self.unresolvable
        for name in names:
            passed.discard(name)
            failed.pop(name, None)
            unresolvable.pop(name, None)


@dataclass(slots=True)
class _Scores:
    valid_at: int = 0
    values: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Entry:
    verdicts: _Verdicts = field(default_factory=_Verdicts)
    scores: _Scores = field(default_factory=_Scores)


class _Entries(cachetools.LRUCache[Hashable, _Entry]):
    def __init__(self, maxsize: int, stats: Stats) -> None:
        super().__init__(maxsize)
        self.stats = stats

    def popitem(self) -> tuple[Hashable, _Entry]:
        self.stats.evictions += 1
        return super().popitem()


def _changes(
    valid_at: int, known: Container[str], view: cluster.ClusterState, limit: int
) -> tuple[Set[str], Sequence[str]] | None:
    """Of the nodes in ``known``, those changed since ``valid_at``: (to judge again now, to
    forget).  None when the change log no longer reaches back that far (forget them all).
    With more than ``limit`` changes, all are forgotten (judged again only when offered)."""
    changed = view.changed_since(valid_at)
    if changed is None:
        return None
    if len(changed) > limit:
        return set(), changed
    return {name for name in set(changed) if name in known}, ()


def _own_names(view: cluster.ClusterState) -> Callable[[str], str]:
    """The view's own string object for a node name.  Entries keep those, not the (equal)
    strings of each call, which would otherwise stay alive once per entry and node."""
    nodes = view.nodes

    def own(name: str) -> str:
        return nodes[name].node.name

    return own


class FeasibilityCache:
    def __init__(self, *, max_signatures: int = 128) -> None:
        self.stats = Stats()
        self._entries = _Entries(max_signatures, self.stats)
        # Signatures filter saw once and has no entry for (insertion order, bounded).
        self._sighted: dict[Hashable, None] = {}
        self._max_sighted = 4 * max_signatures

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, signature: Hashable, *, admit: bool) -> _Entry | None:
        """The signature's entry.  Without one, None; with ``admit``, a new entry if the
        signature was sighted before (else it is sighted now)."""
        entry = self._entries.get(signature)
        if entry is not None or not admit:
            return entry
        if self._sighted.pop(signature, False) is False:
            if len(self._sighted) >= self._max_sighted:
                del self._sighted[next(iter(self._sighted))]
            self._sighted[signature] = None
            return None
        entry = self._entries[signature] = _Entry()
        return entry

    def filter(
        self,
        signature: Hashable,
        names: list[str],
        judge: Judge,
        *,
        view: cluster.ClusterState,
    ) -> predicates.FilterOutcome:
        """Filter's answer for ``names``, judging only nodes changed since the entry was last
        used or new to it.  With no offered node rejected, ``passed`` is ``names`` itself.

        ``judge`` may raise for a name that is not a node of the view; nothing is cached
        for it."""
        entry = self._entry(signature, admit=True)
        verdicts = entry.verdicts if entry is not None else None
        again = 0
        if verdicts and verdicts.valid_at != view.generation:
            changes = _changes(verdicts.valid_at, verdicts, view, len(names))
            if changes is None:
                verdicts.clear()
            else:
                now, later = changes
                verdicts.forget(later)
                verdicts.forget(now)
                nodes = view.nodes
                for name in now:
                    if name in nodes:
                        verdicts.record(name, judge(name))
                        again += 1
        if verdicts is not None:
            verdicts.valid_at = view.generation
        if not verdicts:  # nothing to reuse: judge as without a cache, then remember
            answer = predicates.sort(names, judge)
            if verdicts is not None:
                own = _own_names(view)
                verdicts.passed.update(map(own, answer.passed))
                verdicts.failed.update({own(n): why for n, why in answer.failed.items()})
                verdicts.unresolvable.update(
                    {own(n): why for n, why in answer.unresolvable.items()}
                )
            self._count(miss=True, rechecked=again + len(names))
            return answer
        passed, failed, unresolvable = verdicts.passed, verdicts.failed, verdicts.unresolvable
        if passed.issuperset(names):  # the common answer, in one pass
            self._count(miss=False, rechecked=again)
            return predicates.FilterOutcome(names, {}, {})
        fresh = set(names).difference(passed, failed, unresolvable)
        nodes = view.nodes
        for name in fresh:
            verdict = judge(name)
            verdicts.record(nodes[name].node.name, verdict)
        self._count(miss=False, rechecked=again + len(fresh))
        hit_failed = failed.keys() & names
        hit_unresolvable = unresolvable.keys() & names
        if not hit_failed and not hit_unresolvable:
            return predicates.FilterOutcome(names, {}, {})
        hit = hit_failed | hit_unresolvable
        return predicates.FilterOutcome(
            [name for name in names if name not in hit],
            {name: failed[name] for name in hit_failed},
            {name: unresolvable[name] for name in hit_unresolvable},
        )

    def scores(
        self,
        signature: Hashable,
        names: Sequence[str],
        score: Scorer,
        *,
        view: cluster.ClusterState,
    ) -> scoring.Scores:
        """The score of each of ``names``, computing only nodes changed or new (in
        the signature's entry, made by ``filter``).

        ``score`` may raise for a name that is not a node of the view; nothing is cached
        for it."""
        entry = self._entry(signature, admit=False)
        scores = entry.scores if entry is not None else None
        again = 0
        if scores is not None and scores.values and scores.valid_at != view.generation:
            values = scores.values
            changes = _changes(scores.valid_at, values, view, len(names))
            if changes is None:
                values.clear()
            else:
                now, later = changes
                for name in later:
                    values.pop(name, None)
                nodes = view.nodes
                for name in now:
                    if name in nodes:
                        values[name] = score(name)
                        again += 1
                    else:
                        del values[name]
        if scores is not None:
            scores.valid_at = view.generation
        if scores is None or not scores.values:  # nothing to reuse
            computed = list(map(score, names))
            if scores is not None:
                scores.values.update(zip(map(_own_names(view), names), computed, strict=True))
            self._count(miss=True, rechecked=again + len(names))
            return scoring.Scores(names, computed)
        known = scores.values
        try:
            found = list(map(known.__getitem__, names))
        except KeyError:
            fresh = set(names).difference(known)
            nodes = view.nodes
            for name in fresh:
                value = score(name)
                known[nodes[name].node.name] = value
            self._count(miss=False, rechecked=again + len(fresh))
            found = list(map(known.__getitem__, names))
        else:
            self._count(miss=False, rechecked=again)
        return scoring.Scores(names, found)

    def _count(self, *, miss: bool, rechecked: int) -> None:
        stats = self.stats
        stats.rechecked += rechecked
        if miss:
            stats.misses += 1
        elif rechecked:
            stats.partial_hits += 1
        else:
            stats.hits += 1
