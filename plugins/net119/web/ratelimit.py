"""Sliding-window counter of bad requests per client, in process memory.

Each process that serves the app keeps its own counts, so N processes allow
up to N times the limit, and a restart clears every count. That is enough to
slow down a client that probes tokens, not to stop a distributed attack, which
belongs to the reverse proxy or a firewall.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """Count events per key over the last ``window_seconds`` and block at ``limit``.

    At most ``max_keys`` keys are tracked; the least recently updated key is
    dropped first. Thread-safe.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit <= 0 or window_seconds <= 0 or max_keys <= 0:
            raise ValueError("limit, window_seconds and max_keys must be greater than 0")
        self.limit = limit
        self.window_seconds = window_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> float | None:
        """Return the seconds until ``key`` may try again, or None if it is not blocked."""
        now = self._clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                return None
            self._expire(events, now)
            if not events:
                del self._events[key]
                return None
            if len(events) < self.limit:
                return None
            # The key is free again once enough of its oldest events expire.
            unblocking_event = events[len(events) - self.limit]
            return max(unblocking_event + self.window_seconds - now, 0.0)

    def record(self, key: str) -> bool:
        """Count one event for ``key``; return True if this event reached the limit."""
        now = self._clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                events = deque()
                self._events[key] = events
                while len(self._events) > self.max_keys:
                    self._events.popitem(last=False)
            else:
                self._events.move_to_end(key)
            self._expire(events, now)
            events.append(now)
            # Only the most recent `limit` events decide whether the key is blocked.
            while len(events) > self.limit:
                events.popleft()
            return len(events) == self.limit

    def _expire(self, events: deque[float], now: float) -> None:
        cutoff = now - self.window_seconds
        while events and events[0] <= cutoff:
            events.popleft()
