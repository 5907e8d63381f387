"""CPython's thread switch interval, set for a process that serves a fleet with a thread per
connection beside its event loop (``serve``: moto's handler threads, one per HTTPS connection).

A thread that wants the GIL waits on one condition variable with a timeout of the switch
interval (5 ms by default) and, each time the timeout passes, wakes and asks the holder to let
go. With a fleet's downloads in flight, hundreds of handler threads wait at once: each of them
wakes every 5 ms, and every forced hand-over signals that crowded condition variable. perf on
``serve aws-iot`` during a 1,500-tracker FOTA cycle: futex calls (the GIL's waits and wakes)
took 16 % of the process's CPU, context switches another 8 %.

A thread that blocks (a socket read or write, a TLS record, epoll) releases the GIL at once and
hands it to a waiter without any timeout, which is how these threads share it nearly always: the
interval only bounds how long a thread computing in Python keeps the others out. At
``SWITCH_INTERVAL`` a waiter wakes 20 times less often; a thread computing for longer (a control
plane call over thousands of things) holds up the others for at most that long, far below any
deadline of the protocols served (seconds).
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL = 0.1  # seconds; CPython's default: 0.005


def space_thread_switches() -> float:
    """Set the switch interval (see the module docstring); returns the previous one."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(max(previous, SWITCH_INTERVAL))
    return previous
