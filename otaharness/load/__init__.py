"""``otaharness load KIND``: a fleet of emulated devices as a distributed Locust load test.

Nothing in this package's ``__init__`` imports Locust: ``command.py`` (what ``otaharness load``
calls) starts a new process, ``python -m otaharness.load``, which imports Locust first thing
(gevent monkey-patches that process) and runs it on ``locustfile.py``. Each Locust worker
runs its devices in a device host (``host.py``), a plain asyncio process. docs/load.md says why.
"""
