"""``otaharness load KIND [options]``: run Locust on the otaharness load file, in a new process.

Importing Locust monkey-patches the importing process with gevent, so the CLI process never does:
it replaces itself (``exec``) with ``python -m otaharness.load``, whose first import is Locust.
Everything Locust binds goes to 127.0.0.1 unless the user names another address.
"""

from __future__ import annotations

import os
import sys

from .options import KIND_NAMES, add_load_options

USAGE = f"""usage: otaharness load KIND [--worker | --master] [options]

KIND: {', '.join(KIND_NAMES)}. Each Locust user is one emulated device of that kind.
`otaharness load KIND --help` lists Locust's options and ours (group "otaharness fleet").
See docs/load.md.
"""


def has_option(args: list[str], *names: str) -> bool:
    return any(arg == name or arg.startswith(name + "=") for arg in args for name in names)


def locust_arguments(kind: str, args: list[str]) -> list[str]:
    """Locust's command line for a KIND run: loopback binds unless the user named others."""
    here = os.path.dirname(os.path.abspath(__file__))
    argv = ["-f", os.path.join(here, "locustfile.py"), "--kind", kind]
    if not has_option(args, "--master-bind-host"):
        argv += ["--master-bind-host", "127.0.0.1"]
    if not has_option(args, "--web-host"):
        argv += ["--web-host", "127.0.0.1"]
    return [*argv, *args]


def our_help(kind: str) -> str:
    import argparse

    parser = argparse.ArgumentParser(prog=f"otaharness load {kind}", add_help=False,
                                     usage=USAGE.splitlines()[0].removeprefix("usage: "))
    add_load_options(parser)
    return parser.format_help() + "\nLocust's own options follow.\n"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if argv else 2
    kind, rest = argv[0], argv[1:]
    if kind not in KIND_NAMES:
        print(f"otaharness load: no device kind {kind!r}; kinds: {', '.join(KIND_NAMES)}",
              file=sys.stderr)
        return 2
    if has_option(rest, "-h", "--help"):
        print(our_help(kind), flush=True)  # Locust prints its own below, not ours
    if has_option(rest, "--stages"):  # Locust takes a shape class only if the file has one
        os.environ["OTAHARNESS_LOAD_SHAPE"] = "stages"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "otaharness.load",
                              *locust_arguments(kind, rest)])
    return 0  # not reached
