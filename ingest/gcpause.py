"""Pausing Python's cyclic garbage collector while a bite is written.

A bite allocates tens of thousands of containers (mapped rows, the tuples
handed to the driver, result rows) that live only while it is written and
are freed by reference counting. Counting those allocations, the collector
would meanwhile run again and again, now and then walking the whole heap:
on a backlog of tasks on SQLite that was about an eighth of the write. It is
paused while a bite is written, and runs again after.

The collector is one per process and ingesters write on several threads:
it stays paused while any thread is writing a bite, and it is left as it
was found (a program that turned it off keeps it off).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_writers = 0  # threads inside collector_paused()
_paused_here = False  # whether the first of them turned the collector off


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off."""
    global _writers, _paused_here
    with _lock:
        if _writers == 0:
            _paused_here = gc.isenabled()
            gc.disable()
        _writers += 1
    try:
        yield
    finally:
        with _lock:
            _writers -= 1
            if _writers == 0 and _paused_here:
                gc.enable()
