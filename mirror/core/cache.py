"""A bounded LRU mapping shared by the threads of a process (the server's per-state caches).

Callers put the state they read into every key (the lookup store's token, the catalog's identity), so a
new state never serves a stale value: its keys are new and the old ones age out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class Lru:
    """At most `size` items, the least recently used dropped first; get and put take a lock (threads of
    a server share it). None is not a value: get() answers None for a missing key."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
