"""The templated radix tree (TRT, PAPER.md §3, Alg. 2).

A radix tree over prompt templates. A template is a sequence of *atoms*: a token id (>= 0)
or a placeholder, interned per tree as a negative id with a weight (its estimated length in
tokens). Inner nodes hold runs of atoms (edge labels); each leaf is an LLM operator (the
operator-level TRT) or an LLM call (the call-level TRT), and its template is the path from
the root to its parent. Dependency edges E' link leaves. Trees are worker-aware: each
worker has its own sub-root, so prefixes are only shared within a worker.

    root ─┬─ w0 ── "You are Agent 2 ..." ── <Question> ─┬─ "Please answer" ── [Op2]
          │                                             └─ "Please review" ── <A1> ── [Op3]
          └─ w1 ── ...

Labels are `array('i')`: 4 bytes an atom, not a Python int object each.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Hashable, Iterable, Iterator, Sequence


def _lcp(a: array[int], b: array[int]) -> int:
    """Length of the common prefix of two atom arrays (binary search over C compares)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # invariant: a[:lo] == b[:lo], a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class Node:
    """An inner node: a run of atoms, children keyed by their first atom, and leaves."""

    __slots__ = ("children", "depth", "label", "leaves", "parent", "weight")

    def __init__(self, label: array[int], parent: Node | None, weight: float) -> None:
        self.label = label
        self.parent = parent
        self.children: dict[int, Node] = {}
        self.leaves: list[Hashable] = []
        self.weight = weight  # tokens in this node's label (placeholders by their estimate)
        self.depth: float = weight + (parent.depth if parent is not None else 0.0)

    def has_slot(self) -> bool:
        return bool(self.label) and min(self.label) < 0


class Leaf:
    """An LLM operator or call: its parent node, worker, and direct LLM dependencies."""

    __slots__ = ("deps", "key", "parent", "worker")

    def __init__(self, key: Hashable, parent: Node, worker: int, deps: tuple[Hashable, ...]):
        self.key = key
        self.parent = parent
        self.worker = worker
        self.deps = deps


class TemplatedRadixTree:
    """Radix insertion with node splitting; queries for sharing, static prefixes, groups."""

    def __init__(self) -> None:
        self.roots: dict[int, Node] = {}
        self.leaves: dict[Hashable, Leaf] = {}
        self._slot_ids: dict[Hashable, int] = {}
        self.slot_weight: dict[int, float] = {}

    # -- construction ------------------------------------------------------------------
    def slot(self, key: Hashable, weight: float) -> int:
        """Intern a placeholder; equal keys are the same atom (and share prefixes)."""
        sid = self._slot_ids.get(key)
        if sid is None:
            sid = -(len(self._slot_ids) + 1)
            self._slot_ids[key] = sid
            self.slot_weight[sid] = float(weight)
        return sid

    def _weight(self, atoms: array[int]) -> float:
        w = float(len(atoms))
        if atoms and min(atoms) < 0:
            w += sum(self.slot_weight[a] - 1.0 for a in atoms if a < 0)
        return w

    def add(self, key: Hashable, atoms: Sequence[int], worker: int = 0,
            deps: Iterable[Hashable] = ()) -> Leaf:
        """Insert a leaf whose template is `atoms` (tree.Add of Alg. 2)."""
        if key in self.leaves:
            raise ValueError(f"TRT leaf {key!r} inserted twice")
        deps = tuple(deps)
        for d in deps:
            if d not in self.leaves:
                raise ValueError(f"TRT leaf {key!r} depends on {d!r}, which is not in the tree")
        node = self.roots.get(worker)
        if node is None:
            node = self.roots[worker] = Node(array("i"), None, 0.0)
        rest = array("i", atoms)
        while rest:
            child = node.children.get(rest[0])
            if child is None:
                new = Node(rest, node, self._weight(rest))
                node.children[rest[0]] = new
                node = new
                break
            k = _lcp(child.label, rest)
            if k < len(child.label):
                self._split(child, k)
                child = node.children[rest[0]]
            node, rest = child, rest[k:]
        leaf = Leaf(key, node, worker, deps)
        node.leaves.append(key)
        self.leaves[key] = leaf
        return leaf

    def _split(self, child: Node, k: int) -> None:
        """Split `child`'s label at k: a new node takes the first k atoms."""
        parent = child.parent
        assert parent is not None
        head = Node(child.label[:k], parent, self._weight(child.label[:k]))
        parent.children[head.label[0]] = head
        child.label = child.label[k:]
        child.weight -= head.weight
        child.parent = head
        head.children[child.label[0]] = child

    # -- queries -----------------------------------------------------------------------
    def path(self, key: Hashable) -> list[Node]:
        """Nodes from the worker's sub-root (exclusive) down to the leaf's parent."""
        out = []
        node: Node | None = self.leaves[key].parent
        while node is not None and node.parent is not None:
            out.append(node)
            node = node.parent
        return out[::-1]

    def template(self, key: Hashable) -> list[int]:
        """The leaf's template, reconstructed from its path."""
        return [a for n in self.path(key) for a in n.label]

    def prompt_weight(self, key: Hashable) -> float:
        return self.leaves[key].parent.depth

    def shared_weight(self, a: Hashable, b: Hashable) -> float:
        """Tokens on the common path of two leaves (0 on different workers)."""
        la, lb = self.leaves[a], self.leaves[b]
        if la.worker != lb.worker:
            return 0.0
        na: Node | None = la.parent
        nb: Node | None = lb.parent
        seen = set()
        while na is not None:
            seen.add(id(na))
            na = na.parent
        while nb is not None and id(nb) not in seen:
            nb = nb.parent
        return nb.depth if nb is not None else 0.0

    def prefill_weight(self, prev: Hashable | None, cur: Hashable) -> float:
        """Eq. 1: tokens of `cur` not shared with the call run just before it."""
        full = self.prompt_weight(cur)
        return full if prev is None else full - self.shared_weight(prev, cur)

    def static_prefix(self, key: Hashable) -> int:
        """Tokens before the first placeholder on the leaf's path."""
        n = 0
        for node in self.path(key):
            for a in node.label:
                if a < 0:
                    return n
                n += 1
        return n

    def inner_groups(self) -> list[list[Hashable]]:
        """Leaves grouped by the first node on their path that holds a placeholder.

        Leaves under one such node share a per-query prefix; they form one inner sequence
        of the soft schedule. Leaves with no placeholder at all form singleton groups.
        """
        groups: dict[int, list[Hashable]] = {}
        out: list[list[Hashable]] = []
        for key in self.leaves:
            anchor = next((n for n in self.path(key) if n.has_slot()), None)
            if anchor is None:
                out.append([key])
            elif id(anchor) in groups:
                groups[id(anchor)].append(key)
            else:
                groups[id(anchor)] = grp = [key]
                out.append(grp)
        return out

    def nodes(self) -> Iterator[Node]:
        stack = list(self.roots.values())
        while stack:
            n = stack.pop()
            yield n
            stack.extend(n.children.values())

    def nbytes(self) -> int:
        """Memory held by the tree's own structures (labels, maps, leaves), in bytes."""
        size = sys.getsizeof(self) + sys.getsizeof(self.leaves) + sys.getsizeof(self.roots)
        size += sys.getsizeof(self._slot_ids) + sys.getsizeof(self.slot_weight)
        for n in self.nodes():
            size += (sys.getsizeof(n) + sys.getsizeof(n.label) + sys.getsizeof(n.children)
                     + sys.getsizeof(n.leaves))
        for leaf in self.leaves.values():
            size += sys.getsizeof(leaf) + sys.getsizeof(leaf.deps)
        return size

    def __len__(self) -> int:
        return len(self.leaves)
