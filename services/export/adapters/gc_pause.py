"""Pausing Python's cyclic garbage collector while a large export is read and written."""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def cyclic_gc_paused():
    """A large week is millions of containers and no cycles: the cyclic GC would walk the whole
    tree again and again as it grows and while rows are made (parsing 40 MB took three times as
    long, a 100,000-row CSV a quarter longer). Nothing is lost: refcounting still frees everything
    that is not a cycle, and the few cycles made meanwhile are collected once it resumes. Only
    whoever paused it resumes it, so concurrent builds never leave it off."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
