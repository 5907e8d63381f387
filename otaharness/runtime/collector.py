"""CPython's cyclic garbage collector, set for a process that holds a fleet of thousands of devices.

CPython runs a full collection, which traverses every tracked object of the process, whenever
the objects promoted to the oldest generation since the last one reach a quarter of those it
holds. In a fleet, thousands of sessions are in flight at once, so nearly every short-lived object
(requests, transports, futures, parsed messages) lives through two young collections and is
promoted before it dies by reference counting: the promotions counted grow with the fleet as
fast as the heap does, so full collections come as often at 10,000 devices as at 100, and each
costs in proportion to the fleet. Measured with bench_tr069 (CPU seconds of the process, default
thresholds): 3,000 CPEs spent 19.7 of 56 s in the collector, 16 s of it in 48 full collections;
300 CPEs 0.5 of 12 s.

:func:`tune_for_fleets` keeps the young generations as they are and lets a full collection run
at most once every ``FULL_COLLECTION_EVERY`` second-generation collections (about 7 million net
allocations of containers); the quarter rule still holds on top. Reference cycles that are
garbage wait longer for that collection, which shows as a larger resident set (3,000 CPEs: 95
instead of 72 KiB each at the end). Behaviour is unchanged: only when cycles are freed.
"""

from __future__ import annotations

import gc

FULL_COLLECTION_EVERY = 1000  # CPython's default: 10


def tune_for_fleets() -> tuple[int, int, int]:
    """Space out full collections (see the module docstring); returns the previous thresholds."""
    young, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, max(old, FULL_COLLECTION_EVERY))
    return young, middle, old
