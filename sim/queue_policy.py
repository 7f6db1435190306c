"""Waiting-queue orders: which waiting request an engine admits next, and whom it preempts.

Tiny strategies over one mechanism (the scheduler peeks, admits, pops). Like vLLM's
`request_queue.py`: FCFS is a deque whose preempted requests go back to the front;
priority is a heap on (priority, arrival). LSPF (SGLang's longest-shared-prefix-first,
which the paper runs by sorting vLLM's queue) re-sorts the FCFS queue by cached-prefix
length at the start of each admission round.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from operator import attrgetter

from sim.kv_cache import KVCacheManager
from sim.request import SimRequest


class WaitingQueue(ABC):
    """Waiting requests in admission order."""

    @abstractmethod
    def add(self, req: SimRequest) -> None: ...

    @abstractmethod
    def prepend(self, req: SimRequest) -> None:
        """Return a preempted request."""

    @abstractmethod
    def peek(self) -> SimRequest: ...

    @abstractmethod
    def pop(self) -> SimRequest: ...

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __iter__(self) -> Iterator[SimRequest]: ...

    def begin_admission(self, kv: KVCacheManager) -> None:
        """Called once per step before admitting; orders may re-sort here."""
        return None

    def victim(self, running: list[SimRequest]) -> SimRequest:
        """Which running request to preempt when KV runs out (vLLM: the newest)."""
        return running[-1]


class FCFSQueue(WaitingQueue):
    """First come, first served; preempted requests go to the front."""

    def __init__(self) -> None:
        self._q: deque[SimRequest] = deque()

    def add(self, req: SimRequest) -> None:
        self._q.append(req)

    def prepend(self, req: SimRequest) -> None:
        self._q.appendleft(req)

    def peek(self) -> SimRequest:
        return self._q[0]

    def pop(self) -> SimRequest:
        return self._q.popleft()

    def __len__(self) -> int:
        return len(self._q)

    def __iter__(self) -> Iterator[SimRequest]:
        return iter(self._q)


_PRIORITY_ARRIVAL = attrgetter("priority", "request_id")  # (priority, arrival), in C


class PriorityQueue(WaitingQueue):
    """Lowest `priority` first, then arrival; preempts the worst (priority, arrival)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, SimRequest]] = []

    def add(self, req: SimRequest) -> None:
        heapq.heappush(self._heap, (req.priority, req.request_id, req))

    def prepend(self, req: SimRequest) -> None:
        self.add(req)

    def peek(self) -> SimRequest:
        return self._heap[0][2]

    def pop(self) -> SimRequest:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)

    def __iter__(self) -> Iterator[SimRequest]:
        return (r for _, _, r in sorted(self._heap, key=lambda e: e[:2]))

    def victim(self, running: list[SimRequest]) -> SimRequest:
        return max(running, key=_PRIORITY_ARRIVAL)


class LSPFQueue(FCFSQueue):
    """Longest cached prefix first (stable: FIFO among equal matches)."""

    def begin_admission(self, kv: KVCacheManager) -> None:
        if len(self._q) > 1:
            match = {r.request_id: kv.find_cached_prefix(r).num_tokens for r in self._q}
            self._q = deque(sorted(self._q, key=lambda r: -match[r.request_id]))


QUEUES: dict[str, type[WaitingQueue]] = {
    "fcfs": FCFSQueue,
    "priority": PriorityQueue,
    "lspf": LSPFQueue,
}


def make_queue(order: str) -> WaitingQueue:
    return QUEUES[order]()
