"""``python -m otaharness.load LOCUST_ARGS``: a load process (master, worker or local run).

Locust is imported before anything else of ours so that gevent monkey-patches the standard
library before any module holds on to its unpatched parts; the devices themselves never run in
this process (see host.py).
"""

import locust  # noqa: F401  (first: gevent's monkey-patching)

import sys

from locust.main import main

if __name__ == "__main__":
    sys.argv = ["otaharness load", *sys.argv[1:]]
    sys.exit(main())
